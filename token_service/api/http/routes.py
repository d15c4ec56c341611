"""The OAuth 2.0 HTTP endpoints (Starlette), a second transport over the same domain logic as gRPC.

Routes::

    POST /oauth2/token                          RFC 6749 §4.1.3 (code), §4.3, §6, §4.4 (client credentials); RFC 8693
    GET  /oauth2/authorize, POST /oauth2/login, /oauth2/consent, GET|POST /oauth2/logout
                                                the browser pages (token_service/api/http/authorize.py)
    POST /oauth2/revoke                         RFC 7009
    POST /oauth2/introspect                     RFC 7662
    GET|POST /oauth2/userinfo                   OpenID Connect Core §5.3
    GET  /.well-known/oauth-authorization-server   RFC 8414
    GET  /.well-known/openid-configuration      OpenID Connect Discovery §3
    GET  /.well-known/jwks.json                 RFC 7517
    GET  /healthz, /readyz                      liveness, readiness

A token request reads top to bottom: parse the form → authenticate the client → check the grant
is enabled for it → one domain call → response. Every failure is a leaf of the core's error tree
(:mod:`token_service.errors`) raised on the way and rendered by the one exception handler,
:func:`~token_service.api.http.error_response.oauth_error_response`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from native_iam import bearer
from native_iam import scopes as scope_rules
from native_iam.limits import MAX_TOKEN_BYTES
from token_service.api.http.authorize import BrowserEndpoints
from token_service.api.http.client_auth import authenticate_client
from token_service.api.http.error_response import NO_STORE, oauth_error_response
from token_service.api.http.forms import Form, read_form
from token_service.api.http.metadata import server_metadata
from token_service.clients import ClientStore, GrantType, OAuthClient
from token_service.errors import (
    InvalidClient,
    InvalidTarget,
    MalformedBearerRequest,
    MissingBearerToken,
    TokenServiceError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from token_service.federation import ClientAssertions
from token_service.forwarded import client_address
from token_service.id_tokens import OPENID
from token_service.metrics import Metrics, http_requests_counter
from token_service.settings import IPNetwork

log = logging.getLogger(__name__)

#: RFC 6749 §5.1: token responses must not be cached by anyone.
_PUBLIC_5_MIN: Final[Mapping[str, str]] = {"Cache-Control": "public, max-age=300"}


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """The body of a successful token response (RFC 6749 §5.1 plus the OpenID Connect ``id_token``)."""

    access_token: str
    expires_in: int
    scopes: tuple[str, ...]
    refresh_token: str | None = None
    id_token: str | None = None
    #: RFC 8693 §2.2.1: set (only) in a token exchange response.
    issued_token_type: str | None = None


class OAuthBackend(Protocol):
    """The domain operations behind the endpoints; raise :class:`TokenServiceError` leaves on refusal."""

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
    ) -> TokenResponse: ...

    async def refresh_grant(
        self, client: OAuthClient, *, refresh_token: str, scopes: tuple[str, ...] | None, metadata: str
    ) -> TokenResponse: ...

    async def code_grant(
        self, client: OAuthClient, *, code: str, redirect_uri: str | None, code_verifier: str | None, metadata: str
    ) -> TokenResponse: ...

    async def token_exchange(
        self, client: OAuthClient, *, form: Form, scopes: tuple[str, ...] | None, metadata: str
    ) -> TokenResponse:
        """RFC 8693: the parameters (subject_token, audience, resource…) are read from ``form``."""
        ...

    async def client_credentials_grant(
        self, client: OAuthClient, *, scopes: tuple[str, ...] | None, metadata: str
    ) -> TokenResponse: ...

    async def revoke(self, client: OAuthClient, *, token: str, token_type_hint: str | None) -> None: ...

    async def introspect(self, client: OAuthClient, *, token: str) -> Mapping[str, Any] | None: ...

    async def userinfo(self, access_token: str) -> Mapping[str, Any]: ...

    async def client_auth_failed(self, client_address: str | None) -> None:
        """Count a failed client authentication against the client address (brute-force throttling)."""
        ...

    async def jwks(self) -> tuple[str, int]:
        """The public JWK Set as JSON and how long (seconds) a cache may keep it."""
        ...

    async def ready(self) -> str | None:
        """None when ready; otherwise a short reason (database unreachable, no signing key)."""
        ...


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """What the HTTP layer needs from the token service's settings."""

    issuer: str
    signing_alg: str
    client_secret_key: bytes
    #: NATIVE_IAM_AUDIENCE: the audience of clients that configure none.
    audience: str = "native-iam"
    scopes_supported: tuple[str, ...] = (OPENID,)
    #: NATIVE_IAM_TRUSTED_PROXIES: peers whose X-Forwarded-For names the client.
    trusted_proxies: tuple[IPNetwork, ...] = ()


def _ok(request: Request, body: Mapping[str, Any], *, headers: Mapping[str, str] = NO_STORE) -> Response:
    request.app.state.requests_total.labels(request.scope.get("native_iam_endpoint", "unknown"), "ok", "").inc()
    return JSONResponse(dict(body), headers=dict(headers))


def _endpoint(request: Request, name: str) -> None:
    request.scope["native_iam_endpoint"] = name


# --- Parameters.


def _requested_scopes(form: Form) -> tuple[str, ...] | None:
    """The space-delimited ``scope`` parameter (RFC 6749 §3.3), split; the grant checks the values."""
    raw = form.get("scope")
    return None if raw is None else tuple(raw.split())


def _for_resources(client: OAuthClient, resources: tuple[str, ...], default_audience: str) -> OAuthClient:
    """``client`` with its tokens' audience narrowed to the requested ``resource`` values (RFC 8707).

    Without ``resource`` a token carries every configured audience (as Identify does); each
    requested one must be among them, else invalid_target.
    """
    if not resources:
        return client
    allowed = client.audiences or (default_audience,)
    unknown = [r for r in resources if r not in allowed]
    if unknown:
        raise InvalidTarget(f"resource not allowed for this client: {unknown[0][:100]}")
    return dataclasses.replace(client, audiences=tuple(dict.fromkeys(resources)))


def _client_address(request: Request, config: HttpConfig) -> str | None:
    """Who is asking: the TCP peer, or what a trusted proxy says (:mod:`token_service.forwarded`)."""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.getlist("x-forwarded-for"), config.trusted_proxies)


def _metadata(request: Request, address: str | None) -> str:
    """Seed 000's ``metadata`` for HTTP callers: who asked (stored with the tokens, never in them)."""
    agent = request.headers.get("user-agent", "")[:200]
    return json.dumps({"transport": "http", "ip": address or "", "user_agent": agent}, separators=(",", ":"))


def _token_response(tokens: TokenResponse) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
        "scope": scope_rules.format_scopes(tokens.scopes),
    }
    if tokens.refresh_token:
        body["refresh_token"] = tokens.refresh_token
    if tokens.id_token:
        body["id_token"] = tokens.id_token
    if tokens.issued_token_type:
        body["issued_token_type"] = tokens.issued_token_type
    return body


# --- Endpoints.


class _Endpoints:
    def __init__(
        self, config: HttpConfig, clients: ClientStore, backend: OAuthBackend, assertions: ClientAssertions | None
    ) -> None:
        self.config = config
        self.clients = clients
        self.backend = backend
        self.assertions = assertions

    async def _client(self, request: Request, form: Form) -> OAuthClient:
        try:
            client = await authenticate_client(
                request.headers.get("authorization"), form, self.clients, self.config.client_secret_key, self.assertions
            )
        except InvalidClient:
            # Guessing client credentials costs the address its password attempts too.
            await self.backend.client_auth_failed(_client_address(request, self.config))
            raise
        request.scope["native_iam_client"] = client.client_id  # names the client in deny logs
        if not client.enabled:  # its secret was right: not counted as a guess
            raise InvalidClient("the client is disabled")
        return client

    async def token(self, request: Request) -> Response:
        _endpoint(request, "token")
        form = await read_form(request)
        client = await self._client(request, form)
        grant_type = form.require("grant_type")
        try:
            grant = GrantType(grant_type)
        except ValueError:
            raise UnsupportedGrantType(f"unsupported grant_type: {grant_type[:40]}") from None
        if not client.allows(grant) or (grant is GrantType.CLIENT_CREDENTIALS and client.is_public):
            raise UnauthorizedClient(f"the client may not use the {grant.value} grant")
        scopes = _requested_scopes(form)
        address = _client_address(request, self.config)
        if grant is GrantType.TOKEN_EXCHANGE:
            # Its targets are the client's exchange audiences, not its own (RFC 8693 §2.2.2).
            exchanged = self.backend.token_exchange(
                client, form=form, scopes=scopes, metadata=_metadata(request, address)
            )
            return _ok(request, _token_response(await exchanged))
        client = _for_resources(client, form.get_all("resource"), self.config.audience)
        if grant is GrantType.PASSWORD:
            call = self.backend.password_grant(
                client,
                username=form.require("username"),
                password=form.require("password"),
                namespace=form.get("namespace") or "",
                scopes=scopes or (),
                metadata=_metadata(request, address),
                client_address=address,
            )
        elif grant is GrantType.CLIENT_CREDENTIALS:
            call = self.backend.client_credentials_grant(client, scopes=scopes, metadata=_metadata(request, address))
        elif grant is GrantType.AUTHORIZATION_CODE:
            call = self.backend.code_grant(
                client,
                code=form.require("code"),
                redirect_uri=form.get("redirect_uri"),
                code_verifier=form.get("code_verifier"),
                metadata=_metadata(request, address),
            )
        else:
            call = self.backend.refresh_grant(
                client, refresh_token=form.require("refresh_token"), scopes=scopes, metadata=_metadata(request, address)
            )
        # The grant layer counts the outcome in native_iam_grants_total, as for gRPC.
        return _ok(request, _token_response(await call))

    async def revoke(self, request: Request) -> Response:
        _endpoint(request, "revoke")
        form = await read_form(request)
        client = await self._client(request, form)
        # RFC 7009 §2.2: 200 whether or not the token was valid; an unknown hint is ignored.
        await self.backend.revoke(client, token=form.require("token"), token_type_hint=form.get("token_type_hint"))
        request.app.state.requests_total.labels("revoke", "ok", "").inc()
        return Response(status_code=200, headers=dict(NO_STORE))

    async def introspect(self, request: Request) -> Response:
        _endpoint(request, "introspect")
        form = await read_form(request)
        client = await self._client(request, form)
        claims = await self.backend.introspect(client, token=form.require("token"))
        # RFC 7662 §2.2: anything not active is just {"active": false}, nothing more.
        return _ok(request, {"active": True, **claims} if claims else {"active": False})

    async def userinfo(self, request: Request) -> Response:
        _endpoint(request, "userinfo")
        try:
            token = bearer.token_from(request.headers.get("authorization"), max_bytes=MAX_TOKEN_BYTES)
        except bearer.MalformedHeader as exc:
            raise MalformedBearerRequest(str(exc)) from None
        if token is None:
            raise MissingBearerToken("a bearer access token is required")
        return _ok(request, await self.backend.userinfo(token))

    async def jwks(self, request: Request) -> Response:
        _endpoint(request, "jwks")
        jwks_json, max_age = await self.backend.jwks()
        request.app.state.requests_total.labels("jwks", "ok", "").inc()
        return Response(
            jwks_json,
            media_type="application/jwk-set+json",
            headers={"Cache-Control": f"public, max-age={max(0, int(max_age))}"},
        )

    def metadata(self, *, openid: bool) -> dict[str, Any]:
        c = self.config
        # Service-account assertions only where a cluster issuer is trusted (NATIVE_IAM_CLUSTER_ISSUERS_FILE).
        federated = self.assertions is not None and bool(self.assertions.trust)
        return server_metadata(c.issuer, c.signing_alg, c.scopes_supported, openid=openid, federated=federated)

    async def authorization_server(self, request: Request) -> Response:
        _endpoint(request, "metadata")
        return _ok(request, self.metadata(openid=False), headers=_PUBLIC_5_MIN)

    async def openid_configuration(self, request: Request) -> Response:
        _endpoint(request, "metadata")
        return _ok(request, self.metadata(openid=True), headers=_PUBLIC_5_MIN)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        reason = await self.backend.ready()
        if reason is None:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)


def create_app(
    config: HttpConfig,
    clients: ClientStore,
    backend: OAuthBackend,
    registry: CollectorRegistry,
    metrics: Metrics | None = None,
    browser: BrowserEndpoints | None = None,
    assertions: ClientAssertions | None = None,
) -> Starlette:
    """The Starlette application serving every OAuth HTTP route; its metrics go into ``registry``.

    ``metrics`` are the service's own (shared with gRPC): database failures are counted there.
    ``browser``: the authorization code flow's pages (authorize, login, consent, logout).
    ``assertions`` verify Kubernetes service-account client assertions (None: none accepted).
    """
    if not config.issuer or not config.client_secret_key:
        raise ValueError("HttpConfig needs an issuer and a client secret key")
    endpoints = _Endpoints(config, clients, backend, assertions)
    routes = [
        Route("/oauth2/token", endpoints.token, methods=["POST"]),
        Route("/oauth2/revoke", endpoints.revoke, methods=["POST"]),
        Route("/oauth2/introspect", endpoints.introspect, methods=["POST"]),
        Route("/oauth2/userinfo", endpoints.userinfo, methods=["GET", "POST"]),
        Route("/.well-known/oauth-authorization-server", endpoints.authorization_server, methods=["GET"]),
        Route("/.well-known/openid-configuration", endpoints.openid_configuration, methods=["GET"]),
        Route("/.well-known/jwks.json", endpoints.jwks, methods=["GET"]),
        Route("/healthz", endpoints.healthz, methods=["GET"]),
        Route("/readyz", endpoints.readyz, methods=["GET"]),
    ]
    routes += browser.routes() if browser is not None else []
    app = Starlette(routes=routes, exception_handlers={TokenServiceError: oauth_error_response})
    app.state.metrics = metrics
    app.state.requests_total = http_requests_counter(registry)
    return app


__all__ = ["HttpConfig", "OAuthBackend", "TokenResponse", "create_app"]
