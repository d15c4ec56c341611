"""OpenID Connect Core §5.3 userinfo: who the bearer of an ``openid`` access token is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from native_iam import claims as claim_names
from token_service.access import verify_access_token
from token_service.core import Core
from token_service.errors import GrantError, InsufficientScope, InvalidBearerToken
from token_service.id_tokens import OPENID

__all__ = ["userinfo"]


async def userinfo(core: Core, access_token: str) -> Mapping[str, Any]:
    try:
        claims = await verify_access_token(core, access_token)
    except GrantError as exc:
        # The same statuses as CheckAccess, in RFC 6750 words for a bearer-token endpoint.
        raise InvalidBearerToken(exc.message) from exc
    if claims.is_client:
        # A client_credentials token names a client, not an end-user: nothing for userinfo to
        # say (its grant refuses openid too; this guards tokens whatever their scopes).
        raise InsufficientScope("the access token names a client, not an end-user", claims=claims)
    if OPENID not in claims.scopes:
        raise InsufficientScope("the access token was not issued for the openid scope", claims=claims)
    info: dict[str, Any] = {"sub": claims.sub, "preferred_username": claims.sub}
    if claims.namespace:
        info[claim_names.NAMESPACE] = claims.namespace
    return info
