"""OTLP traces: with SYSTEM_TELEMETRY_EXPORTER_ENDPOINT set, each gRPC call is a server span."""

from __future__ import annotations

import grpc
import pytest

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.conftest import Collector
from token_service.testing import running_token_service


async def test_grpc_calls_are_exported_as_spans(sqlite_url: str, collector: tuple[Collector, str]) -> None:
    """A CheckAccess call reaches the OTLP collector as a span named for the method, status attribute set."""
    servicer, endpoint = collector
    async with (
        running_token_service(sqlite_url, telemetry_endpoint=endpoint) as app,
        grpc.aio.insecure_channel(app.grpc_target) as channel,
    ):
        request = oauth_pb2.CheckAccessRequest(access_token="x.y.z")
        response = await oauth_pb2_grpc.OAuthStub(channel).CheckAccess(request)
        assert response.status == oauth_pb2.CheckAccessResponse.TOKEN_INVALID
    # stop() shut the provider down, which flushed the batch
    (span,) = [s for s in servicer.spans() if s.name == "/native_iam.oauth.v1.OAuth/CheckAccess"]  # type: ignore[attr-defined]
    status = {kv.key: kv.value.int_value for kv in span.attributes}["rpc.grpc.status_code"]
    assert status == grpc.StatusCode.OK.value[0]
    resource = servicer.requests[0].resource_spans[0].resource
    assert any(
        kv.key == "service.name" and kv.value.string_value == "native-iam-token-service" for kv in resource.attributes
    )


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("traceparent", "continued"),
    [
        (f"00-{TRACE_ID}-{PARENT_ID}-01", True),
        ("00-not-a-trace-context", False),  # malformed: a new trace, and the call is answered as usual
        (f"00-{'0' * 32}-{PARENT_ID}-01", False),  # all-zero trace id is invalid (W3C)
    ],
)
async def test_grpc_span_continues_the_callers_traceparent(
    sqlite_url: str, collector: tuple[Collector, str], traceparent: str, continued: bool
) -> None:
    """A caller's W3C traceparent (gRPC metadata, as the sidecar forwards it) is the span's parent."""
    servicer, endpoint = collector
    async with (
        running_token_service(sqlite_url, telemetry_endpoint=endpoint) as app,
        grpc.aio.insecure_channel(app.grpc_target) as channel,
    ):
        request = oauth_pb2.CheckAccessRequest(access_token="x.y.z")
        response = await oauth_pb2_grpc.OAuthStub(channel).CheckAccess(
            request, metadata=(("traceparent", traceparent),)
        )
        assert response.status == oauth_pb2.CheckAccessResponse.TOKEN_INVALID
    (span,) = [s for s in servicer.spans() if s.name == "/native_iam.oauth.v1.OAuth/CheckAccess"]  # type: ignore[attr-defined]
    assert (span.trace_id.hex() == TRACE_ID) is continued  # type: ignore[attr-defined]
    assert (span.parent_span_id.hex() == PARENT_ID) is continued  # type: ignore[attr-defined]
