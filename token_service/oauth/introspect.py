"""RFC 7662 token introspection, for confidential clients."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from native_iam import claims as claim_names
from token_service.access import verify_access_token
from token_service.clients import OAuthClient
from token_service.core import Core
from token_service.errors import InvalidClient, NotFound, TokenServiceError
from token_service.oauth._verify import verified_or_none
from token_service.store import identities, tokens
from token_service.tokens import TokenClaims, token_hash

__all__ = ["introspect"]


async def introspect(core: Core, client: OAuthClient, token: str) -> Mapping[str, Any] | None:
    """The token's claims if it is active, else None (answered as ``{"active": false}``)."""
    if client.is_public:
        # RFC 7662 §2.1: the endpoint needs real authorization against token scanning.
        raise InvalidClient("public clients may not use the introspection endpoint")
    claims = verified_or_none(core, token)
    if claims is None or not client.may_introspect(claims.client_id, _resource_audience(claims)):
        return None  # RFC 7662 §2.2: another client's token is just inactive, nothing more
    if claims.usage == claim_names.ACCESS_TOKEN:
        try:
            await verify_access_token(core, token)
        except TokenServiceError:
            return None
    elif not await _refresh_token_active(core, claims, token):
        return None
    info: dict[str, Any] = {
        "scope": " ".join(claims.scopes),
        "client_id": claims.client_id,
        "sub": claims.sub,
        "aud": claims.audience[0] if len(claims.audience) == 1 else list(claims.audience),
        "iss": core.settings.issuer,
        "exp": claims.exp,
        "iat": claims.iat,
        "nbf": claims.nbf,
        "jti": claims.jti,
        claim_names.TOKEN_USAGE: claims.usage,
    }
    if claims.usage == claim_names.ACCESS_TOKEN:
        info["token_type"] = "Bearer"
    if claims.is_client:
        info[claim_names.SUB_KIND] = claims.principal  # no "username": no resource owner
    else:
        info["username"] = claims.sub
    if claims.namespace:
        info[claim_names.NAMESPACE] = claims.namespace
    return info


async def _refresh_token_active(core: Core, claims: TokenClaims, token: str) -> bool:
    async with core.store.read() as conn:
        record = await tokens.record_async(conn, claims.jti)
        if record is None or record.state != "active" or record.spent_at is not None:
            return False
        if record.token_hash is None or not hmac.compare_digest(record.token_hash, token_hash(token)):
            return False
        if not await identities.is_active(conn, record.identity_id, record.identity_uid):
            return False
    return await _client_live(core, claims)


async def _client_live(core: Core, claims: TokenClaims) -> bool:
    """A refresh token's client still there, enabled, and the one it was issued to (as
    access.client_state decides for access tokens)."""
    if claims.client_id == core.settings.grpc_client_id:
        return True
    try:
        client = await core.clients.get(claims.client_id)
    except NotFound:
        return False
    return client.enabled and claims.iat >= client.created_at


def _resource_audience(claims: TokenClaims) -> tuple[str, ...]:
    """The audience that makes a token "for" a resource server: an access token's ``aud``. A
    refresh token's ``aud`` is this service's issuer; it is only ever presented back here, so
    no client is its audience."""
    return claims.audience if claims.usage == claim_names.ACCESS_TOKEN else ()
