"""Fixtures for the OAuth HTTP endpoints: a running token service core with its HTTP server.

The server is real (uvicorn on 127.0.0.1:0, SQLite); tests talk to it over TCP with httpx.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from token_service import clients
from token_service.admin import ensure_identity
from token_service.clients import OAuthClient
from token_service.core import Core
from token_service.http_server import HttpServer
from token_service.testing import settings_for_tests

PASSWORD = "s3cret-pass"
POLICY = ("openid", "orders:read", "orders:write", "profile:*")
GRACE_S = 5.0


@dataclass
class OAuthService:
    """A running core + HTTP server, its registered clients and their secrets."""

    core: Core
    http: HttpServer
    registry: CollectorRegistry
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.http.url

    async def register(self, client_id: str, **kwargs: object) -> tuple[OAuthClient, str | None]:
        client, secret = clients.new_client(client_id, server_key=self.http.client_secret_key, **kwargs)  # type: ignore[arg-type]
        await self.http.clients.create(client)
        if secret is not None:
            self.secrets[client_id] = secret
        return client, secret

    def basic(self, client_id: str) -> dict[str, str]:
        """Authorization header for ``client_id`` (RFC 6749 §2.3.1 encoding)."""
        from urllib.parse import quote_plus

        raw = f"{quote_plus(client_id)}:{quote_plus(self.secrets[client_id])}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def start_oauth_service(db_url: str, **overrides: object) -> OAuthService:
    core = Core.build(settings_for_tests(db_url, **overrides))
    await core.start()
    registry = CollectorRegistry()
    http = HttpServer(core, registry, client_secret_key=None, refresh_grace_s=GRACE_S)
    await http.start()
    service = OAuthService(core, http, registry)
    await service.register("web", audiences=["https://api.example"])
    await service.register("post", auth_method="client_secret_post")
    await service.register("spa", auth_method="none")
    await service.register("pw-only", grant_types=["password"])
    await service.register("rotating", rotate_refresh_tokens=True)
    await ensure_identity(core, "", "alice", PASSWORD, POLICY)
    await ensure_identity(core, "shop", "bob", PASSWORD, ("orders:read",))
    return service


@pytest.fixture
async def oauth_service(tmp_path: Path) -> AsyncIterator[OAuthService]:
    service = await start_oauth_service(f"sqlite:///{tmp_path / 'oauth.db'}")
    yield service
    await service.http.stop()
    await service.core.close()


@pytest.fixture
async def http(oauth_service: OAuthService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=oauth_service.url) as client:
        yield client


async def password_grant(
    http: httpx.AsyncClient, service: OAuthService, client_id: str = "web", **params: str
) -> httpx.Response:
    """POST a password grant for alice with ``client_id``'s Basic credentials."""
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD, **params}
    return await http.post("/oauth2/token", data=data, headers=service.basic(client_id))
