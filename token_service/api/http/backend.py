"""The HTTP transport's side of "one implementation, two transports".

:class:`CoreBackend` implements :class:`token_service.api.http.routes.OAuthBackend` by calling the same
domain functions as the gRPC API (:mod:`token_service.grants`, :mod:`token_service.access`),
passing the authenticated OAuth client as a :class:`~token_service.grants.ClientContext`. It adds
only what RFC 6749/7009/7662 and OpenID Connect define beyond the seed: ID tokens, revocation by
the client, introspection and userinfo.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from native_iam import claims as claim_names
from token_service import revocations
from token_service.access import verify_access_token
from token_service.api.http.routes import OPENID, TokenResponse
from token_service.clients import OAuthClient
from token_service.core import Core
from token_service.errors import GrantError, InsufficientScope, InvalidBearerToken, InvalidClient, TokenServiceError
from token_service.grants import IssuedTokens, client_context, create_token_with_password, refresh_access_token
from token_service.id_tokens import sign_id_token
from token_service.lockout import address_key
from token_service.store import identities, tokens
from token_service.tokens import TokenClaims, token_hash

__all__ = ["CoreBackend", "client_context"]


class CoreBackend:
    """OAuth HTTP operations over the token service core."""

    def __init__(self, core: Core, *, refresh_grace_s: float) -> None:
        self.core = core
        self.refresh_grace_s = refresh_grace_s

    # --- grants -----------------------------------------------------------------------------

    async def password_grant(
        self,
        client: OAuthClient,
        *,
        username: str,
        password: str,
        namespace: str,
        scopes: tuple[str, ...],
        metadata: str,
        client_address: str | None,
    ) -> TokenResponse:
        result = await create_token_with_password(
            self.core,
            namespace=namespace,
            identity=username,
            password=password,
            metadata=metadata,
            scopes=scopes,
            client=client_context(client, self.refresh_grace_s),
            # Per-address throttling too (gRPC has none: its peer is a sidecar). Behind an ingress
            # the address comes from X-Forwarded-For of NATIVE_IAM_TRUSTED_PROXIES only.
            client_address=client_address,
        )
        return self._response(result, auth_time=int(self.core.clock()))

    async def refresh_grant(
        self, client: OAuthClient, *, refresh_token: str, scopes: tuple[str, ...] | None, metadata: str
    ) -> TokenResponse:
        result = await refresh_access_token(
            self.core,
            refresh_token=refresh_token,
            scopes=scopes,
            client=client_context(client, self.refresh_grace_s),
        )
        return self._response(result, auth_time=None)

    def _response(self, result: IssuedTokens, *, auth_time: int | None) -> TokenResponse:
        id_token = None
        if OPENID in result.scopes:
            id_token = sign_id_token(
                self.core.keys,
                issuer=self.core.settings.issuer,
                subject=result.identity,
                namespace=result.namespace,
                client_id=result.client_id,
                issued_at=int(self.core.clock()),
                ttl_s=result.expires_in,
                auth_time=auth_time,
                access_token=result.access_token,
            )
        return TokenResponse(
            access_token=result.access_token,
            expires_in=result.expires_in,
            scopes=result.scopes,
            refresh_token=result.refresh_token,
            id_token=id_token,
        )

    # --- RFC 7009 revocation ----------------------------------------------------------------

    async def revoke(self, client: OAuthClient, *, token: str, token_type_hint: str | None) -> None:
        """Revoke ``token`` if it is a live token of ``client``; silently do nothing otherwise.

        A refresh token takes its whole family with it (every refresh and access token issued
        from the same password grant): RFC 7009 §2.1 says revoking a refresh token SHOULD also
        invalidate the access tokens based on the same grant. The hint is not needed: both
        kinds are self-describing JWTs.
        """
        claims = self._verified_or_none(token)
        if claims is None or claims.client_id != client.client_id:
            return  # RFC 7009 §2.2: invalid tokens and other clients' tokens get a plain 200
        now = self.core.clock()
        async with self.core.store.write() as conn:
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

    # --- RFC 7662 introspection -------------------------------------------------------------

    async def introspect(self, client: OAuthClient, *, token: str) -> Mapping[str, Any] | None:
        """The token's claims if it is active, else None (answered as ``{"active": false}``)."""
        if client.is_public:
            # RFC 7662 §2.1: the endpoint needs real authorization against token scanning.
            raise InvalidClient("public clients may not use the introspection endpoint")
        claims = self._verified_or_none(token)
        if claims is None or not client.may_introspect(claims.client_id, _resource_audience(claims)):
            return None  # RFC 7662 §2.2: another client's token is just inactive, nothing more
        if claims.usage == claim_names.ACCESS_TOKEN:
            try:
                await verify_access_token(self.core, token)
            except TokenServiceError:
                return None
        elif not await self._refresh_token_active(claims, token):
            return None
        info: dict[str, Any] = {
            "scope": " ".join(claims.scopes),
            "client_id": claims.client_id,
            "username": claims.sub,
            "sub": claims.sub,
            "aud": claims.audience[0] if len(claims.audience) == 1 else list(claims.audience),
            "iss": self.core.settings.issuer,
            "exp": claims.exp,
            "iat": claims.iat,
            "nbf": claims.nbf,
            "jti": claims.jti,
            claim_names.TOKEN_USAGE: claims.usage,
        }
        if claims.usage == claim_names.ACCESS_TOKEN:
            info["token_type"] = "Bearer"
        if claims.namespace:
            info[claim_names.NAMESPACE] = claims.namespace
        return info

    async def _refresh_token_active(self, claims: TokenClaims, token: str) -> bool:
        async with self.core.store.read() as conn:
            record = await tokens.record_async(conn, claims.jti)
            if record is None or record.state != "active" or record.spent_at is not None:
                return False
            if record.token_hash is None or not hmac.compare_digest(record.token_hash, token_hash(token)):
                return False
            return bool(await identities.is_active(conn, record.identity_id, record.identity_uid))

    # --- OpenID Connect userinfo ------------------------------------------------------------

    async def userinfo(self, access_token: str) -> Mapping[str, Any]:
        try:
            claims = await verify_access_token(self.core, access_token)
        except GrantError as exc:
            # The same statuses as CheckAccess, in RFC 6750 words for a bearer-token endpoint.
            raise InvalidBearerToken(exc.message) from exc
        if OPENID not in claims.scopes:
            raise InsufficientScope("the access token was not issued for the openid scope", claims=claims)
        info: dict[str, Any] = {"sub": claims.sub, "preferred_username": claims.sub}
        if claims.namespace:
            info[claim_names.NAMESPACE] = claims.namespace
        return info

    async def client_auth_failed(self, client_address: str | None) -> None:
        if client_address:
            keys = [address_key(client_address)]
            await self.core.store.run_write(self.core.lockout.record_failure_sync, keys, self.core.clock())

    # --- keys and readiness -----------------------------------------------------------------

    async def jwks(self) -> tuple[str, int]:
        return self.core.keys.jwks_json(), self.core.settings.jwks_max_age_s

    async def ready(self) -> str | None:
        if not await self.core.store.ping():
            return "database unreachable"
        try:
            self.core.keys.signing_key()
        except RuntimeError:
            return "no active signing key"
        return None

    def _verified_or_none(self, token: str) -> TokenClaims | None:
        try:
            return self.core.codec.verify(token, self.core.clock())
        except TokenServiceError:
            return None


def _resource_audience(claims: TokenClaims) -> tuple[str, ...]:
    """The audience that makes a token "for" a resource server: an access token's ``aud``. A
    refresh token's ``aud`` is this service's issuer; it is only ever presented back here, so
    no client is its audience."""
    return claims.audience if claims.usage == claim_names.ACCESS_TOKEN else ()
