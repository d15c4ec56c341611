"""RFC 7009 token revocation, by the client the token was issued to."""

from __future__ import annotations

import hmac

from native_iam import claims as claim_names
from token_service import revocations
from token_service.clients import OAuthClient
from token_service.core import Core
from token_service.oauth._verify import verified_or_none
from token_service.store import tokens
from token_service.tokens import token_hash

__all__ = ["revoke"]


async def revoke(core: Core, client: OAuthClient, token: str) -> None:
    """Revoke ``token`` if it is a live token of ``client``; silently do nothing otherwise.

    A refresh token takes its whole family with it (every refresh and access token issued
    from the same password grant): RFC 7009 §2.1 says revoking a refresh token SHOULD also
    invalidate the access tokens based on the same grant. The ``token_type_hint`` is not needed:
    both kinds are self-describing JWTs.
    """
    claims = verified_or_none(core, token)
    if claims is None or claims.client_id != client.client_id:
        return  # RFC 7009 §2.2: invalid tokens and other clients' tokens get a plain 200
    now = core.clock()
    async with core.store.write() as conn:
        record = await tokens.record_async(conn, claims.jti)
        if record is None:
            return
        if claims.usage == claim_names.REFRESH_TOKEN:
            if record.token_hash is None or not hmac.compare_digest(record.token_hash, token_hash(token)):
                return
            match = revocations.TokenMatch(family_id=record.family_id or record.jti)
        else:
            match = revocations.TokenMatch(jti=claims.jti)
        await conn.run_sync(revocations.disable_tokens, match, revocations.Reason.CLIENT_REVOKED, now)
