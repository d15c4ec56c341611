"""The HTTP transport's side of "one implementation, two transports".

:class:`CoreBackend` implements :class:`token_service.api.http.routes.OAuthBackend` by calling the same
domain functions as the gRPC API (:mod:`token_service.grants`, :mod:`token_service.access`),
passing the authenticated OAuth client as a :class:`~token_service.grants.ClientContext`. It adds
only what RFC 6749 and OpenID Connect define beyond the seed (ID tokens) and hands revocation,
introspection and userinfo to :mod:`token_service.oauth`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from token_service import oauth
from token_service.api.http.forms import Form
from token_service.api.http.routes import TokenResponse
from token_service.clients import OAuthClient
from token_service.core import Core
from token_service.grants import (
    ACCESS_TOKEN_TYPE,
    IssuedTokens,
    client_context,
    client_credentials_grant,
    create_token_with_password,
    exchange_authorization_code,
    exchange_token,
    refresh_access_token,
)
from token_service.id_tokens import OPENID, sign_id_token
from token_service.lockout import address_key

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

    async def code_grant(
        self, client: OAuthClient, *, code: str, redirect_uri: str | None, code_verifier: str | None, metadata: str
    ) -> TokenResponse:
        result = await exchange_authorization_code(
            self.core,
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
            client=client_context(client, self.refresh_grace_s),
            metadata=metadata,
        )
        return self._response(result, auth_time=result.auth_time)

    async def token_exchange(
        self, client: OAuthClient, *, form: Form, scopes: tuple[str, ...] | None, metadata: str
    ) -> TokenResponse:
        result = await exchange_token(
            self.core,
            client=client,
            subject_token=form.require("subject_token"),
            subject_token_type=form.require("subject_token_type"),
            requested_token_type=form.get("requested_token_type"),
            actor_token=form.get("actor_token"),
            # RFC 8693 §2.1: the target by logical name (audience) or URI (resource), both allowed.
            audiences=(*form.get_all("audience"), *form.get_all("resource")),
            scopes=scopes,
            metadata=metadata,
        )
        # No ID token: the user did not authenticate here; the workload acts on their behalf.
        return TokenResponse(
            access_token=result.access_token,
            expires_in=result.expires_in,
            scopes=result.scopes,
            issued_token_type=ACCESS_TOKEN_TYPE,
        )

    async def client_credentials_grant(
        self, client: OAuthClient, *, scopes: tuple[str, ...] | None, metadata: str
    ) -> TokenResponse:
        result = await client_credentials_grant(
            self.core, client=client_context(client, self.refresh_grace_s), scopes=scopes, metadata=metadata
        )
        return self._response(result, auth_time=None)

    def _response(self, result: IssuedTokens, *, auth_time: int | None) -> TokenResponse:
        id_token = None
        if OPENID in result.scopes and result.identity:  # a client's own token names no end-user
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
                nonce=result.nonce,
            )
        return TokenResponse(
            access_token=result.access_token,
            expires_in=result.expires_in,
            scopes=result.scopes,
            refresh_token=result.refresh_token,
            id_token=id_token,
        )

    # --- RFC 7009, RFC 7662, OpenID Connect userinfo: the domain lives in token_service.oauth ------

    async def revoke(self, client: OAuthClient, *, token: str, token_type_hint: str | None) -> None:
        await oauth.revoke(self.core, client, token)

    async def introspect(self, client: OAuthClient, *, token: str) -> Mapping[str, Any] | None:
        return await oauth.introspect(self.core, client, token)

    async def userinfo(self, access_token: str) -> Mapping[str, Any]:
        return await oauth.userinfo(self.core, access_token)

    async def client_auth_failed(self, client_address: str | None) -> None:
        if client_address:
            keys = [address_key(client_address)]
            await self.core.lockout.record_failure(keys, self.core.clock())

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
