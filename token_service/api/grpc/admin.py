"""The gRPC edge of the admin API (proto/native_iam/admin/v1/admin.proto).

Every call first authorizes the bearer access token in the ``authorization`` metadata: it must
be valid now (signature, expiry, not disabled or deleted, identity enabled) and carry
``iam:admin``. Then it validates, calls :mod:`token_service.admin.service` and maps the result.
Errors are translated by the shared wrapper in :mod:`token_service.api.grpc.edge`.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from opentelemetry import trace

from native_iam.admin.v1 import admin_pb2 as pb
from native_iam.limits import MAX_JTI_LENGTH, MAX_KID_LENGTH, MAX_NAME_BYTES, MAX_PAGE_TOKEN_BYTES, MAX_PASSWORD_BYTES
from token_service.access import verify_access_token
from token_service.admin import service as admin
from token_service.api.grpc.edge import Methods, bearer_token, text_field, unary_handlers
from token_service.core import Core
from token_service.errors import GrantError, InvalidRequest, PermissionDenied, Unauthenticated
from token_service.keys import SigningKey
from token_service.metrics import Metrics
from token_service.tokens import TokenClaims

__all__ = ["ADMIN_SERVICES", "admin_handlers", "authorize"]

log = logging.getLogger(__name__)

ADMIN_SERVICES = tuple(s.full_name for s in pb.DESCRIPTOR.services_by_name.values())


async def authorize(core: Core, context: grpc.aio.ServicerContext, metrics: Metrics | None = None) -> TokenClaims:
    """The verified claims of the caller's admin token, or Unauthenticated / PermissionDenied."""
    try:
        token = bearer_token(context)
        try:
            claims = await verify_access_token(core, token)
        except GrantError as exc:
            raise Unauthenticated(f"bearer token refused: {exc.status}") from None
        if admin.ADMIN_SCOPE not in claims.scopes:
            raise PermissionDenied()
    except (Unauthenticated, PermissionDenied) as exc:
        reason = "unauthenticated" if isinstance(exc, Unauthenticated) else "permission_denied"
        if metrics:
            metrics.admin_denials.labels(reason).inc()
        log.warning("admin call refused", extra={"reason": reason, "detail": exc.message})
        raise
    return claims


async def audited(
    core: Core, context: grpc.aio.ServicerContext, metrics: Metrics | None, action: str, **details: Any
) -> None:
    """:func:`authorize` the caller, then write the one admin audit line for ``action`` (every
    admin service: identities, tokens, keys, clients)."""
    claims = await authorize(core, context, metrics)
    log.info(
        "admin action",
        # actor_kind: an OAuth client's own token (client_credentials) acts as the client, not as
        # an identity of the same name.
        extra={
            "action": action,
            "actor": claims.sub,
            "actor_kind": claims.principal,
            "actor_namespace": claims.namespace,
            **details,
        },
    )


def _identity(info: admin.IdentityInfo) -> pb.Identity:
    return pb.Identity(
        namespace=info.namespace,
        name=info.name,
        enabled=info.active,
        created_unix=int(info.created_at),
        has_password=info.has_password,
        password_enabled=info.has_password and info.password_enabled,
        policy=sorted(info.policy),
    )


def _key(key: SigningKey, signing_kid: str) -> pb.KeyInfo:
    return pb.KeyInfo(
        kid=key.kid,
        alg=key.alg,
        publish_unix=int(key.publish_at),
        activate_unix=int(key.activate_at),
        retire_unix=int(key.retire_at or 0),
        expire_unix=int(key.expire_at or 0),
        signing=key.kid == signing_kid,
        source=key.source,
    )


def _ref(ref: pb.IdentityRef) -> tuple[str, str]:
    return (
        admin.validate_name("namespace", text_field("namespace", ref.namespace, MAX_NAME_BYTES), required=False),
        admin.validate_name("name", text_field("name", ref.name, MAX_NAME_BYTES)),
    )


def _raw(ref: pb.IdentityRef) -> dict[str, str]:
    """The identity a call names, for the audit log line written before the names are validated
    (authorization comes first: a caller without a token learns nothing from validation errors)."""
    return {"namespace": ref.namespace[:MAX_NAME_BYTES], "identity": ref.name[:MAX_NAME_BYTES]}


def _page_size(value: int) -> int:
    if value < 0:
        raise InvalidRequest("page_size must not be negative")
    return value


class AdminServicer:
    def __init__(self, core: Core, metrics: Metrics | None) -> None:
        self.core = core
        self.metrics = metrics

    async def _caller(self, context: grpc.aio.ServicerContext, action: str, **details: Any) -> None:
        await audited(self.core, context, self.metrics, action, **details)

    # --- Identities -------------------------------------------------------------------------

    async def CreateIdentity(self, request: pb.CreateIdentityRequest, context: Any) -> pb.Identity:
        await self._caller(context, "create_identity", namespace=request.namespace, identity=request.name)
        namespace, name = _ref(pb.IdentityRef(namespace=request.namespace, name=request.name))
        text_field("password", request.password, MAX_PASSWORD_BYTES)
        policy = admin.validate_grants(request.policy)
        await admin.create_identity(self.core, namespace, name, active=not request.disabled)
        if request.password:
            await admin.set_password(self.core, namespace, name, request.password)
        if policy:
            await admin.set_policy(self.core, namespace, name, policy)
        return _identity(await admin.get_identity(self.core, namespace, name))

    async def GetIdentity(self, request: pb.IdentityRef, context: Any) -> pb.Identity:
        await authorize(self.core, context, self.metrics)
        return _identity(await admin.get_identity(self.core, *_ref(request)))

    async def ListIdentities(self, request: pb.ListIdentitiesRequest, context: Any) -> pb.ListIdentitiesResponse:
        await authorize(self.core, context, self.metrics)
        namespace = (
            text_field("namespace", request.namespace, MAX_NAME_BYTES) if request.HasField("namespace") else None
        )
        infos, next_token = await admin.list_identities(
            self.core,
            namespace,
            _page_size(request.page_size),
            text_field("page_token", request.page_token, MAX_PAGE_TOKEN_BYTES),
        )
        return pb.ListIdentitiesResponse(identities=[_identity(i) for i in infos], next_page_token=next_token)

    async def SetIdentityEnabled(self, request: pb.SetIdentityEnabledRequest, context: Any) -> pb.Identity:
        await self._caller(context, "set_identity_enabled", **_raw(request.identity), enabled=request.enabled)
        namespace, name = _ref(request.identity)
        return _identity(await admin.set_identity_active(self.core, namespace, name, request.enabled))

    async def DeleteIdentity(self, request: pb.IdentityRef, context: Any) -> pb.DeleteIdentityResponse:
        await self._caller(context, "delete_identity", **_raw(request))
        namespace, name = _ref(request)
        await admin.delete_identity(self.core, namespace, name)
        return pb.DeleteIdentityResponse()

    async def SetPassword(self, request: pb.SetPasswordRequest, context: Any) -> pb.SetPasswordResponse:
        await self._caller(context, "set_password", **_raw(request.identity))
        namespace, name = _ref(request.identity)
        text_field("password", request.password, MAX_PASSWORD_BYTES, required=True)
        await admin.set_password(self.core, namespace, name, request.password, enabled=not request.disabled)
        return pb.SetPasswordResponse()

    async def SetPasswordEnabled(self, request: pb.SetPasswordEnabledRequest, context: Any) -> pb.SetPasswordResponse:
        await self._caller(context, "set_password_enabled", **_raw(request.identity), enabled=request.enabled)
        namespace, name = _ref(request.identity)
        await admin.set_password_enabled(self.core, namespace, name, request.enabled)
        return pb.SetPasswordResponse()

    async def SetPolicy(self, request: pb.SetPolicyRequest, context: Any) -> pb.Identity:
        await self._caller(context, "set_policy", **_raw(request.identity), policy=" ".join(request.policy)[:500])
        namespace, name = _ref(request.identity)
        return _identity(await admin.set_policy(self.core, namespace, name, request.policy))

    # --- Tokens -----------------------------------------------------------------------------

    async def ListTokens(self, request: pb.ListTokensRequest, context: Any) -> pb.ListTokensResponse:
        await authorize(self.core, context, self.metrics)
        namespace = (
            text_field("namespace", request.namespace, MAX_NAME_BYTES) if request.HasField("namespace") else None
        )
        identity = text_field("identity", request.identity, MAX_NAME_BYTES) if request.HasField("identity") else None
        infos, next_token = await admin.list_tokens(
            self.core,
            namespace,
            identity,
            _page_size(request.page_size),
            text_field("page_token", request.page_token, MAX_PAGE_TOKEN_BYTES),
        )
        return pb.ListTokensResponse(
            tokens=[
                pb.TokenInfo(
                    jti=t.jti,
                    usage=t.usage,
                    namespace=t.namespace,
                    identity=t.identity,
                    client_id=t.client_id,
                    scopes=t.scopes,
                    metadata=t.metadata,
                    created_unix=t.created_at,
                    expires_unix=t.expires_at,
                    state=t.state,
                    family_id=t.family_id or "",
                )
                for t in infos
            ],
            next_page_token=next_token,
        )

    async def SetTokenEnabled(self, request: pb.SetTokenEnabledRequest, context: Any) -> pb.SetTokenEnabledResponse:
        await self._caller(context, "set_token_enabled", jti=request.jti, enabled=request.enabled)
        await admin.set_token_active(
            self.core, text_field("jti", request.jti, MAX_JTI_LENGTH, required=True), request.enabled
        )
        return pb.SetTokenEnabledResponse()

    async def DeleteToken(self, request: pb.DeleteTokenRequest, context: Any) -> pb.DeleteTokenResponse:
        await self._caller(context, "delete_token", jti=request.jti)
        await admin.delete_token(self.core, text_field("jti", request.jti, MAX_JTI_LENGTH, required=True))
        return pb.DeleteTokenResponse()

    # --- Keys -------------------------------------------------------------------------------

    async def ListKeys(self, request: pb.ListKeysRequest, context: Any) -> pb.ListKeysResponse:
        await authorize(self.core, context, self.metrics)
        keys = await admin.list_keys(self.core)
        signing = self.core.keys.signing_key(self.core.clock()).kid
        return pb.ListKeysResponse(keys=[_key(k, signing) for k in keys])

    async def RotateKey(self, request: pb.RotateKeyRequest, context: Any) -> pb.RotateKeyResponse:
        await self._caller(context, "rotate_key")
        delay = request.publish_delay_s if request.HasField("publish_delay_s") else None
        key = await admin.rotate_key(self.core, delay)
        return pb.RotateKeyResponse(key=_key(key, self.core.keys.signing_key(self.core.clock()).kid))

    async def RetireKey(self, request: pb.RetireKeyRequest, context: Any) -> pb.RetireKeyResponse:
        await self._caller(context, "retire_key", kid=request.kid)
        signer = await admin.retire_key(self.core, text_field("kid", request.kid, MAX_KID_LENGTH, required=True))
        return pb.RetireKeyResponse(signing_key=_key(signer, signer.kid))


_METHODS: dict[str, Methods] = {
    "native_iam.admin.v1.Identities": {
        "CreateIdentity": (pb.CreateIdentityRequest, pb.Identity),
        "GetIdentity": (pb.IdentityRef, pb.Identity),
        "ListIdentities": (pb.ListIdentitiesRequest, pb.ListIdentitiesResponse),
        "SetIdentityEnabled": (pb.SetIdentityEnabledRequest, pb.Identity),
        "DeleteIdentity": (pb.IdentityRef, pb.DeleteIdentityResponse),
        "SetPassword": (pb.SetPasswordRequest, pb.SetPasswordResponse),
        "SetPasswordEnabled": (pb.SetPasswordEnabledRequest, pb.SetPasswordResponse),
        "SetPolicy": (pb.SetPolicyRequest, pb.Identity),
    },
    "native_iam.admin.v1.Tokens": {
        "ListTokens": (pb.ListTokensRequest, pb.ListTokensResponse),
        "SetTokenEnabled": (pb.SetTokenEnabledRequest, pb.SetTokenEnabledResponse),
        "DeleteToken": (pb.DeleteTokenRequest, pb.DeleteTokenResponse),
    },
    "native_iam.admin.v1.Keys": {
        "ListKeys": (pb.ListKeysRequest, pb.ListKeysResponse),
        "RotateKey": (pb.RotateKeyRequest, pb.RotateKeyResponse),
        "RetireKey": (pb.RetireKeyRequest, pb.RetireKeyResponse),
    },
}


def admin_handlers(
    core: Core, metrics: Metrics | None, tracer: trace.Tracer | None = None
) -> list[grpc.GenericRpcHandler]:
    return unary_handlers(AdminServicer(core, metrics), _METHODS, metrics, tracer)
