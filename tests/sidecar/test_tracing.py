"""Traces through the sidecar: an ext_authz decision continues the request's W3C traceparent as a
span (result, reason, route; never the token), and the OAuth facade's forwarded calls carry the
trace to the token service, so one trace shows workload → sidecar → token service."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from native_iam.runtime.listen import bind_tcp
from sidecar.ext_authz_grpc import GrpcCheck
from sidecar.ext_authz_http import HttpAuthz
from sidecar.settings import SettingsError, from_env
from sidecar.tracing import SPAN_NAME
from tests.conftest import Collector
from tests.sidecar._stack import in_process_sidecar
from tests.token_service.conftest import add_identity, sqlite_url
from token_service.testing import running_token_service

from ._feed import Issuer
from .test_authorization import Rig
from .test_ext_authz_http import _raw, _read_answer

__all__ = ["sqlite_url"]  # the token service's fixture, reused

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
PASSWORD = "tr4ce-pass-word"


class Traced:
    """A Rig whose Authorizer traces into memory (sampler as the sidecar's: parent-based ratio)."""

    def __init__(self, issuer: Issuer, sample_ratio: float = 0.0) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider(
            resource=Resource.create({"service.name": "native-iam-sidecar"}),
            sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        )
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.rig = Rig(issuer, tracer=provider.get_tracer("sidecar"), sample_ratio=sample_ratio)

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())


def test_check_continues_the_callers_traceparent(issuer: Issuer) -> None:
    """A sampled traceparent: the decision is a child span with result, reason and route, and the
    token appears nowhere in it."""
    traced = Traced(issuer)
    token = issuer.mint("alice", "orders:read")
    response = traced.rig.check(token, headers={"traceparent": SAMPLED}, path="/orders/7?access_token=leak")
    assert response.status.code == 0
    (span,) = traced.spans()
    assert span.name == SPAN_NAME
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == CALLER_SPAN
    assert span.attributes["native_iam.result"] == "allow"
    assert span.attributes["native_iam.reason"] == "token"
    assert span.attributes["native_iam.route"] == "GET /orders/7"
    flat = repr(dict(span.attributes)) + span.name + repr(span.events)
    assert token not in flat and token.split(".")[1] not in flat and "leak" not in flat


@pytest.mark.parametrize(
    ("headers", "reason", "status"),
    [({}, "missing", 401), ({"authorization": "Bearer not.a.jwt"}, "malformed", 401)],
)
def test_deny_span_names_reason_and_status(issuer: Issuer, headers: dict[str, str], reason: str, status: int) -> None:
    traced = Traced(issuer)
    traced.rig.check(headers={"traceparent": SAMPLED, **headers})
    (span,) = traced.spans()
    assert span.attributes["native_iam.result"] == "deny"
    assert span.attributes["native_iam.reason"] == reason
    assert span.attributes["http.response.status_code"] == status


@pytest.mark.parametrize(
    ("headers", "ratio", "spans"),
    [
        ({"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-00"}, 1.0, 0),  # the caller did not sample: neither do we
        ({}, 0.0, 0),  # default: only continue traces
        ({}, 1.0, 1),  # NATIVE_IAM_TRACE_SAMPLE_RATIO=1: every Check starts one
        ({"traceparent": "00-garbage"}, 0.0, 0),  # malformed: as if absent
        ({"traceparent": f"00-{TRACE_ID}-{'0' * 16}-01"}, 0.0, 0),  # zero span id is invalid (W3C)
    ],
)
def test_sampling(issuer: Issuer, headers: dict[str, str], ratio: float, spans: int) -> None:
    traced = Traced(issuer, sample_ratio=ratio)
    response = traced.rig.check(issuer.mint(), headers=headers)
    assert response.status.code == 0  # tracing never changes the decision
    assert len(traced.spans()) == spans


def test_untraced_authorizer_keeps_its_fast_path(issuer: Issuer) -> None:
    """Without SYSTEM_TELEMETRY_EXPORTER_ENDPOINT there are no spans and the gRPC Check methods
    are the untraced ones."""
    rig = Rig(issuer)
    assert rig.authorizer.spans is None
    assert rig.grpc.check_sync.__func__ is GrpcCheck.check_sync  # type: ignore[attr-defined]
    assert rig.grpc.check_async.__func__ is GrpcCheck.check_async  # type: ignore[attr-defined]


def test_settings() -> None:
    assert from_env({}).telemetry_endpoint == "" and from_env({}).trace_sample_ratio == 0.0
    assert from_env({"NATIVE_IAM_TRACE_SAMPLE_RATIO": "0.25"}).trace_sample_ratio == 0.25
    for bad in ("2", "-0.1", "nan", "x"):
        with pytest.raises(SettingsError, match="NATIVE_IAM_TRACE_SAMPLE_RATIO"):
            from_env({"NATIVE_IAM_TRACE_SAMPLE_RATIO": bad})


async def test_one_trace_from_workload_through_sidecar_to_token_service(
    sqlite_url: str, collector: tuple[Collector, str]
) -> None:
    """Over OTLP: the workload's CreateTokenWithPassword through the facade is a sidecar client
    span under the workload's span and a token-service server span under the sidecar's; the
    Check of the next request is a sidecar span under that request's traceparent."""
    servicer, endpoint = collector
    async with running_token_service(sqlite_url, telemetry_endpoint=endpoint) as app:
        await add_identity(app.core, "alice", PASSWORD, ("orders:read",))
        async with in_process_sidecar(app.grpc_target, app.settings.issuer, telemetry_endpoint=endpoint) as sidecar:
            for _ in range(200):  # keys loaded and the feed synced
                if sidecar.ready:
                    break
                await asyncio.sleep(0.05)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.oauth_port}") as channel:
                request = oauth_pb2.CreateTokenWithPasswordRequest(
                    identity="alice", password=PASSWORD, scopes=["orders:read"]
                )
                response = await oauth_pb2_grpc.OAuthStub(channel).CreateTokenWithPassword(
                    request, metadata=(("traceparent", SAMPLED),), timeout=10
                )
            assert response.status == oauth_pb2.CreateTokenWithPasswordResponse.OK
            check = external_auth_pb2.CheckRequest()
            http = check.attributes.request.http
            http.method, http.path = "GET", "/orders/1"
            http.headers["authorization"] = f"Bearer {response.access_token}"
            http.headers["traceparent"] = f"00-{TRACE_ID}-{'1' * 16}-01"
            async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.authz_port}") as channel:
                answer = await external_auth_pb2_grpc.AuthorizationStub(channel).Check(check, timeout=10)
            assert answer.status.code == 0
        # stop() shut both providers down, which flushed their batches
    spans = [s for s in servicer.spans() if s.trace_id.hex() == TRACE_ID]
    services = servicer.services()
    by_name = {s.name: s for s in spans}
    forward = by_name["native_iam.sidecar/CreateTokenWithPassword"]
    served = by_name["/native_iam.oauth.v1.OAuth/CreateTokenWithPassword"]
    decision = by_name[SPAN_NAME]
    assert services[forward.span_id] == "native-iam-sidecar" and forward.parent_span_id.hex() == CALLER_SPAN
    assert services[served.span_id] == "native-iam-token-service" and served.parent_span_id == forward.span_id
    assert services[decision.span_id] == "native-iam-sidecar" and decision.parent_span_id.hex() == "1" * 16
    attributes = {kv.key: kv.value.string_value for kv in decision.attributes}
    assert attributes["native_iam.result"] == "allow" and attributes["native_iam.reason"] == "token"
    assert response.access_token.split(".")[1] not in repr(spans)


def test_route_is_bounded_and_a_failing_description_keeps_the_answer(issuer: Issuer, monkeypatch: Any) -> None:
    """A client-chosen path is cut to 256 characters; if describing the span fails, the Check's
    answer is still returned and the span still ends."""
    traced = Traced(issuer)
    traced.rig.check(issuer.mint(), headers={"traceparent": SAMPLED}, path="/orders/" + "x" * 5000)
    (span,) = traced.spans()
    assert len(span.attributes["native_iam.route"]) <= 4 + 256

    from sidecar import tracing

    def broken(*args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(tracing.DecisionSpans, "_describe", broken)
    response = traced.rig.check(issuer.mint(), headers={"traceparent": SAMPLED})
    assert response.status.code == 0
    assert len(traced.spans()) == 2


async def test_async_server_traces_too(issuer: Issuer) -> None:
    """NATIVE_IAM_AUTHZ_SERVER=aio: the grpc.aio Check path makes the same span."""
    traced = Traced(issuer)
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.path = "GET", "/orders"
    http.headers["authorization"] = f"Bearer {issuer.mint()}"
    http.headers["traceparent"] = SAMPLED
    response = external_auth_pb2.CheckResponse.FromString(await traced.rig.grpc.check_async(request))
    assert response.status.code == 0
    (span,) = traced.spans()
    assert format(span.parent.span_id, "016x") == CALLER_SPAN
    assert span.attributes["native_iam.result"] == "allow"


def test_traceparent_from_raw_header_map(issuer: Issuer) -> None:
    """Envoy with encode_raw_headers sends header_map instead of headers: traceparent is read there."""
    traced = Traced(issuer)
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.path = "GET", "/orders"
    for key, value in (("authorization", f"Bearer {issuer.mint()}"), ("traceparent", SAMPLED)):
        http.header_map.headers.add(key=key, raw_value=value.encode())
    response = external_auth_pb2.CheckResponse.FromString(traced.rig.grpc.check_sync(request))
    assert response.status.code == 0
    (span,) = traced.spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID


@pytest.mark.parametrize(("token", "reason"), [(True, "token"), (False, "missing")])
async def test_the_http_transport_traces_like_grpc(issuer: Issuer, token: bool, reason: str) -> None:
    """Envoy's http_service: the traceparent among the forwarded headers continues into the same
    decision span (result, reason, route without the query), never holding the token."""
    traced = Traced(issuer)
    server = HttpAuthz(traced.rig.authorizer, max_token_bytes=8192)
    port = await server.start(bind_tcp("127.0.0.1:0", "TEST"))
    minted = issuer.mint()
    try:
        request = _raw(path="/orders/7?x=1", token=minted if token else None, traceparent=SAMPLED)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        answer = await _read_answer(reader)
        writer.close()
    finally:
        await server.stop()
    assert answer.status == (200 if token else 401)
    (span,) = traced.spans()
    assert format(span.parent.span_id, "016x") == CALLER_SPAN
    assert span.attributes["native_iam.reason"] == reason
    assert span.attributes["native_iam.route"] == "GET /orders/7"
    assert minted.split(".")[1] not in repr(dict(span.attributes))


async def test_an_internal_failure_over_http_still_ends_its_span(issuer: Issuer) -> None:
    """A bug inside the decision: the HTTP answer is the internal deny and the span is ended with
    reason internal and an error status, never left open."""
    traced = Traced(issuer)
    server = HttpAuthz(traced.rig.authorizer, max_token_bytes=8192)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    server.decide = broken  # type: ignore[method-assign]
    port = await server.start(bind_tcp("127.0.0.1:0", "TEST"))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_raw(token=issuer.mint(), traceparent=SAMPLED))
        answer = await _read_answer(reader)
        writer.close()
    finally:
        await server.stop()
    assert answer.status == 500
    (span,) = traced.spans()
    assert span.attributes["native_iam.reason"] == "internal"
    assert span.status.status_code.name == "ERROR"
