"""The one gRPC edge of every token service API: validate, call the domain, map the outcome.

Requests arrive as raw bytes and are parsed here, so that a message the protobuf runtime refuses
(a string field that is not valid UTF-8) is answered INVALID_ARGUMENT instead of the INTERNAL
that grpcio gives for a failing deserializer. Business outcomes become the response's ``status``
(the leaf's seed status name, looked up in each response's own enum); transport errors use the
leaf's ``grpc_code``. Nothing else in the package knows about gRPC status codes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry import trace

from native_iam import bearer
from native_iam.limits import MAX_TOKEN_BYTES
from native_iam.runtime import telemetry
from token_service.errors import GrantError, InvalidRequest, TokenServiceError, Unauthenticated, Unavailable
from token_service.metrics import Metrics

__all__ = [
    "Methods",
    "Streaming",
    "Unary",
    "bearer_token",
    "business_status",
    "stream",
    "text_field",
    "unary",
    "unary_handlers",
]

log = logging.getLogger(__name__)

_NO_TRACER = trace.NoOpTracer()

Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Message]]
Streaming = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Message]]


# --- validation ----------------------------------------------------------------------------


def text_field(name: str, value: str, max_bytes: int, required: bool = False) -> str:
    if required and not value:
        raise InvalidRequest(f"{name} is required")
    if len(value) > max_bytes or len(value.encode("utf-8")) > max_bytes:
        raise InvalidRequest(f"{name} is longer than {max_bytes} bytes")
    return value


def bearer_token(context: grpc.aio.ServicerContext, what: str = "access token") -> str:
    """The token of the caller's one ``authorization: Bearer <token>`` metadata entry.

    Shared by every authenticated gRPC call (the admin API, the revocation feed), parsed by the
    one bearer parser (:mod:`native_iam.bearer`); raises :class:`Unauthenticated` when it is
    missing, repeated or not a bearer credential.
    """
    values = [v for k, v in (context.invocation_metadata() or ()) if k == "authorization"]
    if len(values) != 1 or not isinstance(values[0], str):
        raise Unauthenticated(f"send exactly one 'authorization: Bearer <{what}>' metadata entry")
    try:
        token = bearer.token_from(values[0], max_bytes=MAX_TOKEN_BYTES)
    except bearer.MalformedHeader:
        token = None
    if token is None:
        raise Unauthenticated(f"the authorization metadata must be 'Bearer <{what}>'")
    return token


def business_status(enum: Any, error: GrantError) -> int:
    """The value of ``error.status`` in one response's ``Status`` enum (the seed's name)."""
    return enum.Value(error.status)


# --- the generic wrapper -------------------------------------------------------------------


def _failure(method: str, exc: BaseException, metrics: Metrics | None) -> tuple[grpc.StatusCode, str]:
    """Translate an exception that escaped a handler into a gRPC status, once, here."""
    if metrics:
        metrics.count_failure(exc)
    if isinstance(exc, TokenServiceError):
        if isinstance(exc, Unavailable):
            log.warning(
                f"{exc.dependency} unavailable", extra={"method": method, "cause": type(exc.__cause__).__name__}
            )
        return exc.grpc_code, exc.message
    log.exception("unexpected error in %s", method)
    return grpc.StatusCode.INTERNAL, "internal error"


def _decode(request_cls: type[Message], raw: bytes) -> Message:
    """The request message, or INVALID_ARGUMENT: never INTERNAL for bytes a caller chose."""
    try:
        return request_cls.FromString(raw)
    except DecodeError:
        raise InvalidRequest("malformed request: a string field is not valid UTF-8 or the message is corrupt") from None


def unary(
    service: str,
    method: str,
    request_cls: type[Message],
    response_cls: type[Message],
    fn: Unary,
    metrics: Metrics | None,
    tracer: trace.Tracer | None = None,
) -> grpc.RpcMethodHandler:
    full = f"/{service}/{method}"
    tracer = tracer or _NO_TRACER
    if isinstance(tracer, trace.NoOpTracer):
        return _untraced_unary(full, request_cls, response_cls, fn, metrics)

    async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Message:
        started = time.perf_counter()
        code, message = grpc.StatusCode.OK, ""
        with tracer.start_as_current_span(
            full,
            context=_caller(context),
            kind=trace.SpanKind.SERVER,
            attributes=_span_attributes(service, method),
        ) as span:
            try:
                return await fn(_decode(request_cls, raw), context)
            except (TokenServiceError, Exception) as exc:
                code, message = _failure(full, exc, metrics)
            finally:
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                if metrics:
                    metrics.rpc_latency.labels(full, code.name).observe(time.perf_counter() - started)
        await context.abort(code, message)
        raise AssertionError("unreachable")  # context.abort always raises

    return grpc.unary_unary_rpc_method_handler(handle, response_serializer=response_cls.SerializeToString)


#: A service's unary methods: name → (request message, response message).
Methods = Mapping[str, tuple[type[Message], type[Message]]]


def unary_handlers(
    servicer: Any, services: Mapping[str, Methods], metrics: Metrics | None, tracer: trace.Tracer | None = None
) -> list[grpc.GenericRpcHandler]:
    """One generic handler per service, each method ``servicer.<Method>`` behind :func:`unary`."""
    handlers = []
    for service, methods in services.items():
        table = {
            method: unary(service, method, request_cls, response_cls, getattr(servicer, method), metrics, tracer)
            for method, (request_cls, response_cls) in methods.items()
        }
        handlers.append(grpc.method_handlers_generic_handler(service, table))
    return handlers


def _untraced_unary(
    full: str, request_cls: type[Message], response_cls: type[Message], fn: Unary, metrics: Metrics | None
) -> grpc.RpcMethodHandler:
    """:func:`unary` without tracing (no SYSTEM_TELEMETRY_EXPORTER_ENDPOINT): the hot paths pay
    for no no-op span, and the OK latency series is looked up once, not per call."""
    ok_latency = metrics.rpc_latency.labels(full, grpc.StatusCode.OK.name) if metrics else None

    async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Message:
        started = time.perf_counter()
        try:
            response = await fn(_decode(request_cls, raw), context)
        except (TokenServiceError, Exception) as exc:
            code, message = _failure(full, exc, metrics)
            if metrics:
                metrics.rpc_latency.labels(full, code.name).observe(time.perf_counter() - started)
            await context.abort(code, message)
            raise AssertionError("unreachable") from None  # context.abort always raises
        if ok_latency is not None:
            ok_latency.observe(time.perf_counter() - started)
        return response

    return grpc.unary_unary_rpc_method_handler(handle, response_serializer=response_cls.SerializeToString)


def stream(
    service: str,
    method: str,
    request_cls: type[Message],
    response_cls: type[Message],
    fn: Streaming,
    metrics: Metrics | None,
    tracer: trace.Tracer | None = None,
) -> grpc.RpcMethodHandler:
    full = f"/{service}/{method}"
    tracer = tracer or _NO_TRACER

    async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Message]:
        started = time.perf_counter()
        code, message = grpc.StatusCode.OK, ""
        with tracer.start_as_current_span(
            full,
            context=_caller(context),
            kind=trace.SpanKind.SERVER,
            attributes=_span_attributes(service, method),
        ) as span:
            try:
                async for item in fn(_decode(request_cls, raw), context):
                    yield item
                return
            except (TokenServiceError, Exception) as exc:
                code, message = _failure(full, exc, metrics)
            finally:
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                if metrics:
                    metrics.rpc_latency.labels(full, code.name).observe(time.perf_counter() - started)
        await context.abort(code, message)

    return grpc.unary_stream_rpc_method_handler(handle, response_serializer=response_cls.SerializeToString)


def _caller(context: grpc.aio.ServicerContext) -> Any:
    """The caller's trace context (a sidecar forwarding a workload's call sends ``traceparent``)."""
    return telemetry.parent(context.invocation_metadata() or ())


def _span_attributes(service: str, method: str) -> dict[str, str]:
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
