"""The seed's ``native_iam.oauth.v1.OAuth`` API, served by the sidecar to its own workload.

``CheckAccess`` is answered locally by the same authentication path as ext_authz's ``Check``
(sidecar/authenticate.py: size limit, decision cache, verification, unknown-kid refetch,
revocations), with the seed's statuses (revocation reasons map to TOKEN_DISABLED /
TOKEN_NOT_FOUND as feed.proto documents). ``CreateTokenWithPassword`` and ``RefreshToken`` are
forwarded to the token service with a deadline; when it cannot be reached the workload gets
UNAVAILABLE with a message saying so (retry with back-off), never a made-up status. A forwarded
call carries the workload's W3C trace context on (through a client span of the sidecar's when
tracing is on), so one trace shows workload → sidecar → token service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from opentelemetry import trace

from native_iam import scopes as scope_rules
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from native_iam.runtime import telemetry

from .authenticate import Authenticator, Credential, Entry
from .decision import Deny, Reason
from .keys import KeyStore
from .revocations import RevocationCache
from .settings import Settings

log = logging.getLogger("sidecar.oauth_facade")

CheckStatus = oauth_pb2.CheckAccessResponse.Status
_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class OAuthFacade(oauth_pb2_grpc.OAuthServicer):
    def __init__(
        self,
        settings: Settings,
        keys: KeyStore,
        revocations: RevocationCache,
        *,
        token_channel: grpc.aio.Channel,
        password_channel: grpc.aio.Channel | None = None,
        wall_clock: Callable[[], float] = time.time,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._s = settings
        self._tracer = tracer
        self._token = oauth_pb2_grpc.OAuthStub(token_channel)
        self._password = oauth_pb2_grpc.OAuthStub(password_channel) if password_channel else self._token
        # Its own instance (and cache): it takes bare tokens, ext_authz takes header values.
        self._authenticator = Authenticator(
            settings, keys, revocations, credential=Credential.TOKEN, wall_clock=wall_clock
        )

    # ---- forwarded ----

    async def CreateTokenWithPassword(
        self, request: oauth_pb2.CreateTokenWithPasswordRequest, context: grpc.aio.ServicerContext
    ) -> oauth_pb2.CreateTokenWithPasswordResponse:
        return await self._forward(
            self._password.CreateTokenWithPassword,
            "CreateTokenWithPassword",
            request,
            context,
            self._s.forward_password_url,
        )

    async def RefreshToken(
        self, request: oauth_pb2.RefreshTokenRequest, context: grpc.aio.ServicerContext
    ) -> oauth_pb2.RefreshTokenResponse:
        return await self._forward(self._token.RefreshToken, "RefreshToken", request, context, self._s.token_url)

    async def _forward(
        self, method: Any, name: str, request: Any, context: grpc.aio.ServicerContext, target: str
    ) -> Any:
        try:
            return await self._call(method, name, request, context)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _UNREACHABLE:
                log.warning("token service unreachable", extra={"target": target, "error": str(exc.code())})
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, f"the token service at {target} cannot be reached; retry later"
                )
            # The token service's own answer (INVALID_ARGUMENT, …) passes through unchanged.
            await context.abort(exc.code(), exc.details() or "")
            raise  # unreachable: abort raises

    async def _call(self, method: Any, name: str, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """The forwarded call, in the workload's trace: a client span when tracing is on (its
        ``traceparent`` sent on), else the workload's own trace headers passed through unchanged."""
        incoming = context.invocation_metadata() or ()
        if self._tracer is None:
            metadata = tuple((k, v) for k, v in incoming if k in telemetry.TRACE_HEADERS)
            return await method(request, timeout=self._s.forward_timeout_s, metadata=metadata or None)
        with self._tracer.start_as_current_span(
            f"native_iam.sidecar/{name}",
            context=telemetry.parent(incoming),
            kind=trace.SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": "native_iam.oauth.v1.OAuth", "rpc.method": name},
        ):
            return await method(request, timeout=self._s.forward_timeout_s, metadata=telemetry.outgoing())

    # ---- local ----

    async def CheckAccess(
        self, request: oauth_pb2.CheckAccessRequest, context: grpc.aio.ServicerContext
    ) -> oauth_pb2.CheckAccessResponse:
        token = request.access_token
        if not token:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "access_token: required")
        try:
            wanted = scope_rules.normalize(request.scopes)
        except scope_rules.ScopeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"scopes: {exc}")
        result = self._answer(await self._authenticator.authenticate_async(token), wanted)
        if isinstance(result, Deny):
            if result.bad_request:  # the access_token field itself is malformed (too long)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"access_token: {result.description}")
            if result.reason in (Reason.FEED_STALE, Reason.KEYS_UNAVAILABLE):
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"{result.description} ({result.reason.value})")
            log.info("check_access denied", extra={"reason": result.reason.value, "jti": result.jti or None})
            return oauth_pb2.CheckAccessResponse(status=result.check_status, message=result.description)
        return result

    def check(self, token: str, wanted: tuple[str, ...]) -> oauth_pb2.CheckAccessResponse | Deny:
        """CheckAccess without the gRPC plumbing (blocking on an unknown-kid refetch): a response,
        or the Deny to translate."""
        return self._answer(self._authenticator.authenticate(token), wanted)

    @staticmethod
    def _answer(result: Entry | Deny, wanted: tuple[str, ...]) -> oauth_pb2.CheckAccessResponse | Deny:
        """The authenticated token against the scopes the workload asked for."""
        if isinstance(result, Deny):
            return result
        p = result.principal
        token_scopes = sorted(p.scopes)
        missing = [s for s in wanted if s not in p.scopes]
        if missing:
            return oauth_pb2.CheckAccessResponse(
                status=CheckStatus.UNAUTHORIZED,
                message="missing scope: " + " ".join(missing),
                identity=p.identity,
                namespace=p.namespace,
                scopes=token_scopes,
            )
        return oauth_pb2.CheckAccessResponse(
            status=CheckStatus.OK, identity=p.identity, namespace=p.namespace, scopes=token_scopes
        )


def handler(facade: OAuthFacade) -> grpc.GenericRpcHandler:
    """The OAuth service (see :func:`parsed_handler`)."""
    return parsed_handler(
        oauth_pb2.DESCRIPTOR.services_by_name["OAuth"].full_name,
        {
            "CreateTokenWithPassword": (
                oauth_pb2.CreateTokenWithPasswordRequest,
                oauth_pb2.CreateTokenWithPasswordResponse,
                facade.CreateTokenWithPassword,
            ),
            "RefreshToken": (oauth_pb2.RefreshTokenRequest, oauth_pb2.RefreshTokenResponse, facade.RefreshToken),
            "CheckAccess": (oauth_pb2.CheckAccessRequest, oauth_pb2.CheckAccessResponse, facade.CheckAccess),
        },
    )


def parsed_handler(service: str, methods: dict[str, tuple[Any, Any, Any]]) -> grpc.GenericRpcHandler:
    """A service of the local API (``name: (request class, response class, behaviour)``) with
    requests parsed here rather than by grpc.aio's deserializer, which answers a request it cannot
    decode (corrupt bytes, a string field that is not UTF-8) with UNKNOWN: a malformed request is
    INVALID_ARGUMENT, as at the token service."""

    def parsed(request_cls: Any, behaviour: Any) -> Any:
        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            try:
                request = request_cls.FromString(raw)
            except DecodeError:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "malformed request: a string field is not valid UTF-8 or the message is corrupt",
                )
            return await behaviour(request, context)

        return handle

    return grpc.method_handlers_generic_handler(
        service,
        {
            name: grpc.unary_unary_rpc_method_handler(
                parsed(request_cls, behaviour), response_serializer=response_cls.SerializeToString
            )
            for name, (request_cls, response_cls, behaviour) in methods.items()
        },
    )
