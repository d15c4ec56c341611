"""Envoy's ext_authz gRPC protocol (``grpc_service``): ``CheckRequest`` → decision → ``CheckResponse``.

Only translation: the attributes Envoy sends become a :class:`~sidecar.authorization.Request`
(the route's requirement from route metadata and ``context_extensions``: sidecar/requirements.py),
and the verdict becomes a serialized ``CheckResponse``, encoded once per verdict and kept on it.
Decisions always travel in ``CheckResponse.status`` with gRPC OK.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2
from google.rpc import code_pb2, status_pb2
from opentelemetry import trace

from .authenticate import NEED_REFETCH
from .authorization import Authorizer, Request
from .requirements import RequirementError
from .tracing import grpc_trace_headers
from .verdict import Allow, Denial, Verdict

SERVICE = "envoy.service.auth.v3.Authorization"
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def _header(name: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=name, value=value), append_action=_OVERWRITE)


def encode(v: Verdict) -> bytes:
    """The serialized ``CheckResponse`` of a verdict (stored on it: each verdict is encoded once)."""
    cached = v.grpc
    if cached is not None:
        return cached
    if v.__class__ is Allow:
        response = external_auth_pb2.CheckResponse(status=status_pb2.Status(code=code_pb2.OK))
        ok = response.ok_response
        # OVERWRITE: a client-sent header of the same name never reaches the upstream.
        ok.headers.extend(_header(name, value) for name, value in v.headers)
        ok.headers_to_remove.extend(v.remove)  # type: ignore[union-attr]
    else:
        d: Denial = v  # type: ignore[assignment]
        response = external_auth_pb2.CheckResponse(status=status_pb2.Status(code=d.rpc_code))
        denied = response.denied_response
        denied.status.code = d.status  # type: ignore[assignment]
        denied.body = d.body
        denied.headers.extend(_header(name, value) for name, value in d.headers)
    if v.metadata:
        response.dynamic_metadata.update(v.metadata)
    encoded = v.grpc = response.SerializeToString()
    return encoded


def _from_header_map(header_map: Any, name: str) -> str | None:
    """The header from ``header_map`` (Envoy's ``encode_raw_headers: true``); repeats are joined
    with "," as Envoy joins them in ``headers``, so a duplicate token header stays malformed."""
    values = [h.raw_value.decode("utf-8", "replace") or h.value for h in header_map.headers if h.key == name]
    return ",".join(values) if values else None


class GrpcCheck:
    """``Check`` for a grpcio server: sync (blocks on an unknown-kid refetch) or grpc.aio (awaits it)."""

    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer
        self._decide = authorizer.decide
        self._resolve = authorizer.resolver.resolve
        self._header = authorizer.token_header
        self._seconds = authorizer.metrics.check_seconds
        self._spans = authorizer.spans
        if self._spans is not None:
            # Traced twins wrap the untraced Checks, which stay exactly as fast when tracing is off.
            self.check_sync, self.check_async = self.traced_sync, self.traced_async  # type: ignore[method-assign]

    def request(self, check: Any) -> Request:
        """The transport-neutral view of a ``CheckRequest``."""
        attributes = check.attributes
        http = attributes.request.http
        try:
            requirement: Any = self._resolve(attributes)
        except RequirementError as exc:
            requirement = exc
        credential = http.headers.get(self._header)
        if credential is None and http.HasField("header_map"):
            credential = _from_header_map(http.header_map, self._header)
        return Request(http.method, http.host, http.path, credential, requirement)

    def verdict_sync(self, check: Any) -> Verdict:
        """The verdict on ``check``, blocking on an unknown-kid refetch; a bug is the internal deny."""
        try:
            r = self.request(check)
            verdict = self._decide(r)
            if verdict is NEED_REFETCH:
                self._authorizer.authenticator.wait_for_keys()
                verdict = self._decide(r, True)
            return verdict  # type: ignore[return-value]
        except Exception:
            return self._authorizer.internal()

    async def verdict_async(self, check: Any) -> Verdict:
        """:meth:`verdict_sync` for grpc.aio: the refetch is awaited."""
        try:
            r = self.request(check)
            verdict = self._decide(r)
            if verdict is NEED_REFETCH:
                await self._authorizer.authenticator.wait_for_keys_async()
                verdict = self._decide(r, True)
            return verdict  # type: ignore[return-value]
        except Exception:
            return self._authorizer.internal()

    def check_sync(self, check: Any, context: Any = None) -> bytes:
        started = time.perf_counter()
        response = encode(self.verdict_sync(check))
        self._seconds.observe(time.perf_counter() - started)
        return response

    async def check_async(self, check: Any, context: Any = None) -> bytes:
        started = time.perf_counter()
        response = encode(await self.verdict_async(check))
        self._seconds.observe(time.perf_counter() - started)
        return response

    # ---- traced twins, used only when tracing is on (Authorizer.spans) ----

    def traced_sync(self, check: Any, context: Any = None) -> bytes:
        http = check.attributes.request.http
        span = self._spans.start(grpc_trace_headers(http))  # type: ignore[union-attr]
        if span is None:
            return GrpcCheck.check_sync(self, check, context)
        started = time.perf_counter()
        with trace.use_span(span, end_on_exit=False):
            verdict = self.verdict_sync(check)
        response = encode(verdict)
        self._seconds.observe(time.perf_counter() - started)
        self._spans.end(span, http.method, http.path, verdict)  # type: ignore[union-attr]
        return response

    async def traced_async(self, check: Any, context: Any = None) -> bytes:
        http = check.attributes.request.http
        span = self._spans.start(grpc_trace_headers(http))  # type: ignore[union-attr]
        if span is None:
            return await GrpcCheck.check_async(self, check, context)
        started = time.perf_counter()
        with trace.use_span(span, end_on_exit=False):
            verdict = await self.verdict_async(check)
        response = encode(verdict)
        self._seconds.observe(time.perf_counter() - started)
        self._spans.end(span, http.method, http.path, verdict)  # type: ignore[union-attr]
        return response


def _serialize(response: Any) -> bytes:
    return response if response.__class__ is bytes else response.SerializeToString()


def handler(authorizer: Authorizer, *, asynchronous: bool) -> grpc.GenericRpcHandler:
    """The ``envoy.service.auth.v3.Authorization`` service for a grpc (or grpc.aio) server.

    A generic handler rather than the generated servicer: responses are already serialized
    (cached verdicts keep their encoding), so the serializer passes bytes through.
    """
    check = GrpcCheck(authorizer)
    method = grpc.unary_unary_rpc_method_handler(
        check.check_async if asynchronous else check.check_sync,
        request_deserializer=external_auth_pb2.CheckRequest.FromString,
        response_serializer=_serialize,
    )
    return grpc.method_handlers_generic_handler(SERVICE, {"Check": method})


def parse_response(data: bytes) -> Any:
    """A serialized CheckResponse as a message (for tests and tools)."""
    return external_auth_pb2.CheckResponse.FromString(data)


__all__ = ["SERVICE", "GrpcCheck", "encode", "handler", "parse_response"]
