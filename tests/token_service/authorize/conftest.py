"""Fixtures for the authorization code flow: the running token service of the OAuth HTTP tests
(tests/token_service/api/http/conftest.py, re-used, not copied) with browser-flow clients, and a
scripted browser (httpx with a cookie jar) that reads the forms' hidden fields like a browser would."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.token_service.api.http.conftest import PASSWORD, OAuthService, http, oauth_service

__all__ = ["PASSWORD", "Browser", "Pkce", "browser", "flow_service", "http", "oauth_service", "pkce"]

WEB_REDIRECT = "https://web.example/callback"
SPA_REDIRECT = "http://127.0.0.1:8765/cb"
LOGOUT_REDIRECT = "https://web.example/signed-out"


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str


def pkce() -> Pkce:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return Pkce(verifier, challenge)


@pytest.fixture
async def flow_service(oauth_service: OAuthService) -> OAuthService:
    return await register_flow_clients(oauth_service)


async def register_flow_clients(oauth_service: OAuthService) -> OAuthService:
    """The OAuth test service plus: ``webapp`` (confidential, asks consent), ``spa-app`` (public,
    PKCE only, rotating refresh tokens), ``portal`` (first-party), ``other`` (another confidential app)."""
    code_grants = ["authorization_code", "refresh_token"]
    await oauth_service.register(
        "webapp",
        name="Order Desk",
        grant_types=code_grants,
        redirect_uris=[WEB_REDIRECT, "https://web.example/cb?tenant=1"],
        post_logout_redirect_uris=[LOGOUT_REDIRECT],
    )
    await oauth_service.register(
        "spa-app", auth_method="none", name="Shop SPA", grant_types=code_grants, redirect_uris=[SPA_REDIRECT]
    )
    await oauth_service.register(
        "portal", name="Portal", grant_types=code_grants, redirect_uris=[WEB_REDIRECT], first_party=True
    )
    await oauth_service.register(
        "other",
        grant_types=code_grants,
        redirect_uris=["https://other.example/cb"],
        post_logout_redirect_uris=["https://other.example/bye"],
    )
    return oauth_service


_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def hidden_fields(page: str) -> dict[str, str]:
    import html

    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}


@dataclass
class Browser:
    """One browser: its cookie jar lives in ``http``; redirects are not followed (we read them)."""

    http: httpx.AsyncClient
    service: OAuthService
    last: httpx.Response | None = None
    verifiers: dict[str, Pkce] = field(default_factory=dict)

    async def authorize(
        self, client_id: str = "webapp", redirect_uri: str = WEB_REDIRECT, **params: str
    ) -> httpx.Response:
        """GET /oauth2/authorize with a fresh PKCE pair (unless the test passes its own parameters)."""
        pair = pkce()
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid orders:read",
            "state": "st-" + secrets.token_hex(4),
            "code_challenge": pair.challenge,
            "code_challenge_method": "S256",
            **params,
        }
        self.verifiers[query["state"]] = pair
        self.last = await self.http.get("/oauth2/authorize", params={k: v for k, v in query.items() if v is not None})
        return self.last

    async def login(
        self, username: str = "alice", password: str = PASSWORD, namespace: str = "", page: httpx.Response | None = None
    ) -> httpx.Response:
        fields = hidden_fields((page or self.last).text)  # type: ignore[union-attr]
        data = {**fields, "username": username, "password": password, "namespace": namespace}
        self.last = await self.http.post("/oauth2/login", data=data)
        return self.last

    async def consent(self, decision: str = "allow", page: httpx.Response | None = None) -> httpx.Response:
        fields = hidden_fields((page or self.last).text)  # type: ignore[union-attr]
        self.last = await self.http.post("/oauth2/consent", data={**fields, "decision": decision})
        return self.last


def redirect_params(response: httpx.Response) -> dict[str, str]:
    """The query of a 303 redirect, one value each."""
    assert response.status_code == 303, (response.status_code, response.text[:500])
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


@pytest.fixture
async def browser(flow_service: OAuthService) -> AsyncIterator[Browser]:
    async with httpx.AsyncClient(base_url=flow_service.url, follow_redirects=False) as client:
        yield Browser(client, flow_service)
