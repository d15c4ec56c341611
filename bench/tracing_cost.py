"""CPU per ext_authz Check with tracing off and on: a direct timing of the sidecar's Authorizer
(no gRPC, no Envoy), like the decision part of scenario 3. ``python -m bench.tracing_cost``.

Rows: tracing off (no SYSTEM_TELEMETRY_EXPORTER_ENDPOINT: the untraced methods); tracing on and
the request carries no traceparent (NATIVE_IAM_TRACE_SAMPLE_RATIO=0, the default); tracing on and
the caller did not sample (traceparent flag 00); and every Check sampled (a span built, its
attributes set, handed to the batch processor; the exporter drops it, so the network is not
measured). The token is cached, the cheapest decision, so the tracing overhead is the largest share.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from envoy.service.auth.v3 import external_auth_pb2
from google.protobuf import struct_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import CollectorRegistry

from bench import _tokens
from native_iam.oauth.v1 import feed_pb2
from sidecar.authorization import Authorizer
from sidecar.ext_authz_grpc import GrpcCheck
from sidecar.keys import KeyStore
from sidecar.metrics import Metrics
from sidecar.revocations import RevocationCache
from sidecar.settings import Settings

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}"


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _authorizer(key: _tokens.SigningKey, traced: bool) -> Authorizer:
    jwks = key.jwks_json()
    keys = KeyStore(lambda: (jwks, 300.0), max_age_s=86400, min_refetch_s=5)
    keys.refresh()
    revocations = RevocationCache(max_staleness_s=86400)
    kind = feed_pb2.WatchRevocationsResponse.Kind
    revocations.apply(feed_pb2.WatchRevocationsResponse(kind=kind.SNAPSHOT, reset=True, synced=True))
    tracer = None
    if traced:
        provider = TracerProvider(resource=Resource.create({}), sampler=ParentBased(TraceIdRatioBased(0.0)))
        provider.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=65536))
        tracer = provider.get_tracer("sidecar")
    settings = Settings(issuer=_tokens.ISSUER, audiences=(_tokens.AUDIENCE,))
    return Authorizer(settings, keys, revocations, Metrics(CollectorRegistry()), tracer=tracer)


def _request(token: str, traceparent: str | None) -> Any:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.path, http.host = "GET", "/orders/42", "orders.shop.svc"
    http.headers.update({
        ":authority": "orders.shop.svc", ":method": "GET", ":path": "/orders/42", "user-agent": "wrk",
        "accept": "*/*", "x-request-id": "5f0c6b1e-9a8e-4c1b-8f57-1c1a2b3c4d5e", "authorization": f"Bearer {token}",
    })  # fmt: skip
    if traceparent:
        http.headers["traceparent"] = traceparent
    md = struct_pb2.Struct()
    md.update({"scopes": _tokens.SCOPE})
    request.attributes.route_metadata_context.filter_metadata["native_iam"].CopyFrom(md)
    return request


def _cpu_us(authorizer: Authorizer, request: Any, n: int) -> float:
    check = GrpcCheck(authorizer).check_sync
    check(request)  # warm the decision cache
    best = float("inf")
    for _ in range(5):  # best of 5: the machine is shared
        started = time.process_time()
        for _ in range(n):
            check(request)
        best = min(best, (time.process_time() - started) / n * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20_000, help="Checks per timing round")
    n = parser.parse_args(argv).n
    key = _tokens.SigningKey.generate()
    token = key.access_token()
    off, on = _authorizer(key, traced=False), _authorizer(key, traced=True)
    rows = [
        ("tracing off (endpoint unset)", off, None),
        ("tracing on, no traceparent (ratio 0)", on, None),
        ("tracing on, traceparent not sampled", on, TRACEPARENT.format(flags="00")),
        ("tracing on, every Check sampled", on, TRACEPARENT.format(flags="01")),
    ]
    base = 0.0
    print("| case | CPU µs/Check | vs off |\n|---|---|---|")
    for name, authorizer, traceparent in rows:
        us = _cpu_us(authorizer, _request(token, traceparent), n)
        base = base or us
        print(f"| {name} | {us:.1f} | {us / base:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
