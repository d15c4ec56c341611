"""The gRPC edge of the OAuth and Feed services: validate, call the domain, map the outcome.

Requests arrive as raw bytes and are parsed here, so that a message the protobuf runtime refuses
(a string field that is not valid UTF-8) is answered INVALID_ARGUMENT instead of the INTERNAL
that grpcio gives for a failing deserializer. Business outcomes become the response's ``status``
(the leaf's seed status name, looked up in each response's own enum); transport errors use the
leaf's ``grpc_code``. Nothing else in the package knows about gRPC status codes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry import trace

from native_iam import bearer
from native_iam.limits import MAX_METADATA_BYTES, MAX_NAME_BYTES, MAX_PASSWORD_BYTES, MAX_TOKEN_BYTES
from native_iam.oauth.v1 import feed_pb2, oauth_pb2
from token_service import grants
from token_service.access import check_access
from token_service.core import Core
from token_service.errors import (
    GrantError,
    InsufficientScope,
    InvalidRequest,
    TokenServiceError,
    Unauthenticated,
    Unavailable,
)
from token_service.metrics import Metrics

__all__ = [
    "FeedCredentials",
    "bearer_token",
    "business_status",
    "oauth_handler",
    "rpc_handlers",
    "text_field",
]

log = logging.getLogger(__name__)

OAUTH_SERVICE = "native_iam.oauth.v1.OAuth"
FEED_SERVICE = "native_iam.oauth.v1.Feed"

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


def _peer_label(context: grpc.aio.ServicerContext) -> str:
    try:
        return context.peer()
    except Exception:
        return "unknown"


def _failure(method: str, exc: BaseException, metrics: Metrics | None) -> tuple[grpc.StatusCode, str]:
    """Translate an exception that escaped a handler into a gRPC status, once, here."""
    if metrics:
        metrics.count_failure(exc)
    if isinstance(exc, TokenServiceError):
        if isinstance(exc, Unavailable):
            log.warning("database unavailable", extra={"method": method, "cause": type(exc.__cause__).__name__})
        return exc.grpc_code, exc.message
    log.exception("unexpected error in %s", method)
    return grpc.StatusCode.INTERNAL, "internal error"


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
            full, kind=trace.SpanKind.SERVER, attributes=_span_attributes(service, method)
        ) as span:
            try:
                try:
                    request = request_cls.FromString(raw)
                except DecodeError:
                    raise InvalidRequest(
                        "malformed request: a string field is not valid UTF-8 or the message is corrupt"
                    ) from None
                return await fn(request, context)
            except (TokenServiceError, Exception) as exc:
                code, message = _failure(full, exc, metrics)
            finally:
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                if metrics:
                    metrics.rpc_latency.labels(full, code.name).observe(time.perf_counter() - started)
        await context.abort(code, message)
        raise AssertionError("unreachable")  # context.abort always raises

    return grpc.unary_unary_rpc_method_handler(handle, response_serializer=response_cls.SerializeToString)


def _untraced_unary(
    full: str, request_cls: type[Message], response_cls: type[Message], fn: Unary, metrics: Metrics | None
) -> grpc.RpcMethodHandler:
    """:func:`unary` without tracing (no SYSTEM_TELEMETRY_EXPORTER_ENDPOINT): the hot paths pay
    for no no-op span, and the OK latency series is looked up once, not per call."""
    ok_latency = metrics.rpc_latency.labels(full, grpc.StatusCode.OK.name) if metrics else None
    parse = request_cls.FromString

    async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Message:
        started = time.perf_counter()
        try:
            try:
                request = parse(raw)
            except DecodeError:
                raise InvalidRequest(
                    "malformed request: a string field is not valid UTF-8 or the message is corrupt"
                ) from None
            response = await fn(request, context)
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
            full, kind=trace.SpanKind.SERVER, attributes=_span_attributes(service, method)
        ) as span:
            try:
                try:
                    request = request_cls.FromString(raw)
                except DecodeError:
                    raise InvalidRequest(
                        "malformed request: a string field is not valid UTF-8 or the message is corrupt"
                    ) from None
                async for item in fn(request, context):
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


def _span_attributes(service: str, method: str) -> dict[str, str]:
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}


# --- OAuth ---------------------------------------------------------------------------------


class OAuthServicer:
    """native_iam.oauth.v1.OAuth on top of :mod:`token_service.grants` and :mod:`token_service.access`."""

    def __init__(self, core: Core, metrics: Metrics | None = None) -> None:
        self.core = core
        self.metrics = metrics

    async def CreateTokenWithPassword(
        self, request: oauth_pb2.CreateTokenWithPasswordRequest, context: grpc.aio.ServicerContext
    ) -> oauth_pb2.CreateTokenWithPasswordResponse:
        Response = oauth_pb2.CreateTokenWithPasswordResponse
        text_field("namespace", request.namespace, MAX_NAME_BYTES)
        text_field("identity", request.identity, MAX_NAME_BYTES, required=True)
        text_field("password", request.password, MAX_PASSWORD_BYTES, required=True)
        text_field("metadata", request.metadata, MAX_METADATA_BYTES)
        try:
            issued = await grants.create_token_with_password(
                self.core,
                namespace=request.namespace,
                identity=request.identity,
                password=request.password,
                metadata=request.metadata,
                scopes=request.scopes,  # checked by the grant (token_service.requested_scopes)
            )
        except GrantError as exc:
            log.info(
                "password grant refused",
                extra={
                    "status": exc.status,
                    "reason": exc.reason,
                    "identity": request.identity,
                    "namespace": request.namespace,
                },
            )
            return Response(status=business_status(Response.Status, exc))
        return Response(
            status=Response.OK,
            access_token=issued.access_token,
            refresh_token=issued.refresh_token or "",
            expires_in=issued.expires_in,
            scopes=issued.scopes,
        )

    async def RefreshToken(
        self, request: oauth_pb2.RefreshTokenRequest, context: grpc.aio.ServicerContext
    ) -> oauth_pb2.RefreshTokenResponse:
        Response = oauth_pb2.RefreshTokenResponse
        text_field("refresh_token", request.refresh_token, MAX_TOKEN_BYTES, required=True)
        try:
            issued = await grants.refresh_access_token(self.core, refresh_token=request.refresh_token)
        except GrantError as exc:
            log.info("refresh grant refused", extra={"status": exc.status, "reason": exc.reason, "detail": exc.message})
            return Response(status=business_status(Response.Status, exc))
        return Response(
            status=Response.OK,
            access_token=issued.access_token,
            expires_in=issued.expires_in,
            scopes=issued.scopes,
            refresh_token=issued.refresh_token or "",
        )

    async def CheckAccess(
        self, request: oauth_pb2.CheckAccessRequest, context: grpc.aio.ServicerContext
    ) -> oauth_pb2.CheckAccessResponse:
        Response = oauth_pb2.CheckAccessResponse
        text_field("access_token", request.access_token, MAX_TOKEN_BYTES, required=True)
        try:
            granted = await check_access(self.core, access_token=request.access_token, scopes=request.scopes)
        except GrantError as exc:
            if self.metrics:
                self.metrics.checks.labels(exc.status or "").inc()
            log.info("access check denied", extra={"status": exc.status, "reason": exc.reason, "detail": exc.message})
            response = Response(status=business_status(Response.Status, exc), message=exc.message)
            if isinstance(exc, InsufficientScope) and exc.claims is not None:
                claims = exc.claims
                response.identity, response.namespace = claims.sub, claims.namespace  # type: ignore[attr-defined]
                response.scopes.extend(claims.scopes)  # type: ignore[attr-defined]
            return response
        if self.metrics:
            self.metrics.checks.labels("OK").inc()
        c = granted.claims
        return Response(
            status=Response.OK, message=granted.message, identity=c.sub, namespace=c.namespace, scopes=c.scopes
        )


class FeedServicer:
    """native_iam.oauth.v1.Feed: the JWKS here; WatchRevocations in :mod:`token_service.feed.hub`."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def GetJwks(
        self, request: feed_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> feed_pb2.GetJwksResponse:
        return feed_pb2.GetJwksResponse(
            jwks_json=self.core.keys.jwks_json(), max_age_s=self.core.settings.jwks_max_age_s
        )


class FeedCredentials:
    """Who may watch the revocation feed: callers presenting one of the NATIVE_IAM_FEED_TOKEN tokens.

    The feed names identities and jtis, so it is not public (GetJwks is: public keys only). A
    static token from a Kubernetes Secret shared with the sidecars is the simplest credential to
    operate: no client registration, no token expiry to track, no dependency of the feed on the
    database; several tokens may be accepted at once, for a rotation. Compared as SHA-256 digests
    in constant time, every configured token each time (no early exit).
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        self._digests = [hashlib.sha256(t.encode("utf-8")).digest() for t in tokens]

    def check(self, context: grpc.aio.ServicerContext) -> None:
        """Return when the caller presented an accepted feed token, else raise Unauthenticated."""
        presented = hashlib.sha256(bearer_token(context, "feed token").encode("utf-8")).digest()
        # A list, not a generator: every digest is compared, whichever matches.
        if not any([hmac.compare_digest(presented, d) for d in self._digests]):
            raise Unauthenticated("the feed token is not accepted (NATIVE_IAM_FEED_TOKEN)")


def _authenticated(watch: Streaming, credentials: FeedCredentials) -> Streaming:
    """``watch`` behind the feed credential, checked before the request is looked at."""

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Message]:
        try:
            credentials.check(context)
        except Unauthenticated as exc:
            log.warning("feed subscriber refused", extra={"peer": context.peer(), "detail": exc.message})
            raise
        async for message in watch(request, context):
            yield message

    return guarded


def oauth_handler(core: Core, metrics: Metrics | None, tracer: trace.Tracer | None = None) -> grpc.GenericRpcHandler:
    s = OAuthServicer(core, metrics)
    return grpc.method_handlers_generic_handler(
        OAUTH_SERVICE,
        {
            "CreateTokenWithPassword": unary(
                OAUTH_SERVICE,
                "CreateTokenWithPassword",
                oauth_pb2.CreateTokenWithPasswordRequest,
                oauth_pb2.CreateTokenWithPasswordResponse,
                s.CreateTokenWithPassword,
                metrics,
                tracer,
            ),
            "RefreshToken": unary(
                OAUTH_SERVICE,
                "RefreshToken",
                oauth_pb2.RefreshTokenRequest,
                oauth_pb2.RefreshTokenResponse,
                s.RefreshToken,
                metrics,
                tracer,
            ),
            "CheckAccess": unary(
                OAUTH_SERVICE,
                "CheckAccess",
                oauth_pb2.CheckAccessRequest,
                oauth_pb2.CheckAccessResponse,
                s.CheckAccess,
                metrics,
                tracer,
            ),
        },
    )


def feed_handlers(
    core: Core, metrics: Metrics | None, watch: Streaming | None, tracer: trace.Tracer | None = None
) -> grpc.GenericRpcHandler:
    s = FeedServicer(core)
    handlers = {
        "GetJwks": unary(
            FEED_SERVICE, "GetJwks", feed_pb2.GetJwksRequest, feed_pb2.GetJwksResponse, s.GetJwks, metrics, tracer
        )
    }
    if watch is not None:
        if not core.settings.feed_tokens:
            log.warning("NATIVE_IAM_FEED_TOKEN is not set: WatchRevocations refuses every caller (no sidecar can sync)")
        handlers["WatchRevocations"] = stream(
            FEED_SERVICE,
            "WatchRevocations",
            feed_pb2.WatchRevocationsRequest,
            feed_pb2.WatchRevocationsResponse,
            _authenticated(watch, FeedCredentials(core.settings.feed_tokens)),
            metrics,
            tracer,
        )
    return grpc.method_handlers_generic_handler(FEED_SERVICE, handlers)


def rpc_handlers(
    core: Core, metrics: Metrics | None, watch: Streaming | None = None, tracer: trace.Tracer | None = None
) -> list[grpc.GenericRpcHandler]:
    return [oauth_handler(core, metrics, tracer), feed_handlers(core, metrics, watch, tracer)]
