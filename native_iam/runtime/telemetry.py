"""OTLP traces for both roles, when SYSTEM_TELEMETRY_EXPORTER_ENDPOINT is set.

The token service makes one server span per gRPC call; the sidecar one span per sampled ext_authz
decision and one client span per OAuth call it forwards. W3C ``traceparent``/``tracestate`` join
them: :func:`parent` reads the caller's context from request headers or gRPC metadata,
:func:`outgoing` writes the current one into the metadata of a forwarded call, so one trace shows
workload → sidecar → token service.

The exporter is written here on purpose: ``xds-protos`` (needed for Envoy's ext_authz stubs)
ships an older copy of ``opentelemetry/proto`` that overwrites the one
``opentelemetry-exporter-otlp-proto-grpc`` was built against, which then fails to import. The
older and newer OTLP messages are wire-compatible (``instrumentation_library_spans`` and
``scope_spans`` are both field 2), so this exporter fills whichever the installed copy names.
Without the variable, spans go to a no-op tracer and cost nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["TRACE_HEADERS", "OtlpGrpcSpanExporter", "Telemetry", "outgoing", "parent"]

log = logging.getLogger(__name__)

_SPANS_FIELD = (
    "scope_spans"
    if "scope_spans" in trace_pb2.ResourceSpans.DESCRIPTOR.fields_by_name
    else "instrumentation_library_spans"
)
_SCOPE_FIELD = "scope" if _SPANS_FIELD == "scope_spans" else "instrumentation_library"
_SCOPE_SPANS = getattr(trace_pb2, "ScopeSpans", None) or trace_pb2.InstrumentationLibrarySpans
_SCOPE = getattr(common_pb2, "InstrumentationScope", None) or common_pb2.InstrumentationLibrary


def _value(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    return common_pb2.AnyValue(string_value=str(value))


def _attributes(attributes: Any) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=_value(v)) for k, v in (attributes or {}).items()]


def _span(span: ReadableSpan) -> trace_pb2.Span:
    context = span.get_span_context()
    parent = span.parent
    status_code = {trace.StatusCode.UNSET: 0, trace.StatusCode.OK: 1, trace.StatusCode.ERROR: 2}[
        span.status.status_code
    ]
    return trace_pb2.Span(
        trace_id=context.trace_id.to_bytes(16, "big"),
        span_id=context.span_id.to_bytes(8, "big"),
        parent_span_id=parent.span_id.to_bytes(8, "big") if parent else b"",
        name=span.name,
        kind=span.kind.value + 1,  # SDK INTERNAL=0 … ; OTLP SPAN_KIND_INTERNAL=1 …
        start_time_unix_nano=span.start_time or 0,
        end_time_unix_nano=span.end_time or 0,
        attributes=_attributes(span.attributes),
        status=trace_pb2.Status(code=status_code, message=span.status.description or ""),
    )


class OtlpGrpcSpanExporter(SpanExporter):
    """Sends spans to an OTLP/gRPC collector (TraceService/Export)."""

    def __init__(self, endpoint: str, timeout_s: float = 10.0) -> None:
        target = endpoint.removeprefix("http://").removeprefix("https://").rstrip("/")
        secure = endpoint.startswith("https://")
        self._channel = (
            grpc.secure_channel(target, grpc.ssl_channel_credentials()) if secure else grpc.insecure_channel(target)
        )
        self._stub = trace_service_pb2_grpc.TraceServiceStub(self._channel)
        self._timeout_s = timeout_s

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        by_resource: dict[Any, dict[tuple[str, str], list[trace_pb2.Span]]] = {}
        for span in spans:
            scope = span.instrumentation_scope
            key = (scope.name, scope.version or "") if scope else ("", "")
            by_resource.setdefault(span.resource, {}).setdefault(key, []).append(_span(span))
        request = trace_service_pb2.ExportTraceServiceRequest()
        for resource, scopes in by_resource.items():
            resource_spans = request.resource_spans.add(
                resource=resource_pb2.Resource(attributes=_attributes(resource.attributes))
            )
            for (name, version), items in scopes.items():
                getattr(resource_spans, _SPANS_FIELD).append(
                    _SCOPE_SPANS(**{_SCOPE_FIELD: _SCOPE(name=name, version=version), "spans": items})
                )
        try:
            self._stub.Export(request, timeout=self._timeout_s)
        except grpc.RpcError as exc:
            log.warning("OTLP export failed", extra={"code": exc.code().name})  # type: ignore[attr-defined]
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._channel.close()


class Telemetry:
    """The tracer of one service instance (no global provider, so tests can run several).

    ``sample_ratio`` applies to traces this instance starts; a caller's ``traceparent`` decides for
    the traces it continues (its sampled flag is followed: parent-based sampling).
    """

    def __init__(
        self,
        endpoint: str | None,
        service_name: str = "native-iam-token-service",
        *,
        scope: str = "token_service",
        sample_ratio: float = 1.0,
    ) -> None:
        self.provider: TracerProvider | None = None
        self.sample_ratio = sample_ratio
        if endpoint:
            self.provider = TracerProvider(
                resource=Resource.create({"service.name": service_name}),
                sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
            )
            self.provider.add_span_processor(BatchSpanProcessor(OtlpGrpcSpanExporter(endpoint)))
            self.tracer: trace.Tracer = self.provider.get_tracer(scope)
        else:
            self.tracer = trace.NoOpTracer()

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def flush(self) -> None:
        if self.provider is not None:
            self.provider.force_flush(5_000)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


# ---- W3C trace context (https://www.w3.org/TR/trace-context/) ----

TRACE_HEADERS = ("traceparent", "tracestate")
_PROPAGATOR = TraceContextTextMapPropagator()


def parent(carrier: Mapping[str, str] | Iterable[tuple[str, Any]]) -> Any | None:  # a Context
    """The caller's trace context from HTTP headers (a mapping, lower-case names, as in Envoy's
    CheckRequest) or gRPC metadata (key/value pairs); None when it sent no valid ``traceparent``.
    A malformed ``traceparent`` is ignored (a new trace starts), never an error."""
    # A protobuf map (Envoy's headers) has .get like a Mapping; metadata is a sequence of pairs.
    headers = carrier if hasattr(carrier, "get") else {k: v for k, v in carrier if k in TRACE_HEADERS}
    if "traceparent" not in headers:
        return None
    context = _PROPAGATOR.extract({k: headers[k] for k in TRACE_HEADERS if k in headers})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def outgoing(context: Any | None = None) -> tuple[tuple[str, str], ...]:
    """gRPC metadata carrying the current span's (or ``context``'s) trace context to the next hop."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return tuple(carrier.items())
