"""native_iam.oauth.v1.OAuth over gRPC: the password and refresh grants and CheckAccess, on top
of :mod:`token_service.grants` and :mod:`token_service.access`, behind the edge wrapper
(:mod:`token_service.api.grpc.edge`)."""

from __future__ import annotations

import logging

import grpc
from opentelemetry import trace

from native_iam.limits import MAX_METADATA_BYTES, MAX_NAME_BYTES, MAX_PASSWORD_BYTES, MAX_TOKEN_BYTES
from native_iam.oauth.v1 import oauth_pb2
from token_service import grants
from token_service.access import check_access
from token_service.api.grpc.edge import business_status, text_field, unary
from token_service.core import Core
from token_service.errors import GrantError, InsufficientScope
from token_service.metrics import Metrics

__all__ = ["OAUTH_SERVICE", "OAuthServicer", "oauth_handler"]

log = logging.getLogger(__name__)

OAUTH_SERVICE = "native_iam.oauth.v1.OAuth"


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
                response.identity, response.namespace = claims.identity, claims.namespace  # type: ignore[attr-defined]
                response.scopes.extend(claims.scopes)  # type: ignore[attr-defined]
            return response
        if self.metrics:
            self.metrics.checks.labels("OK").inc()
        c = granted.claims
        return Response(
            status=Response.OK, message=granted.message, identity=c.identity, namespace=c.namespace, scopes=c.scopes
        )


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
