"""Fixtures for the OAuth HTTP endpoints: a running token service (gRPC + HTTP) on SQLite.

The servers are real (uvicorn and grpc.aio on 127.0.0.1:0, in the test's event loop); tests talk
to them over TCP with httpx, Authlib and gRPC stubs.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from tests.k8s_issuer import KubernetesIssuer
from token_service import clients
from token_service.admin import ensure_identity
from token_service.api.http.server import HttpServer
from token_service.app import TokenServiceApp
from token_service.clients import OAuthClient
from token_service.core import Core
from token_service.testing import settings_for_tests

PASSWORD = "s3cret-pass"
POLICY = ("openid", "orders:read", "orders:write", "profile:*")
GRACE_S = 5.0


@dataclass
class OAuthService:
    """A running core + HTTP server, its registered clients and their secrets."""

    app: TokenServiceApp
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def core(self) -> Core:
        return self.app.core

    @property
    def http(self) -> HttpServer:
        return self.app.http

    @property
    def registry(self) -> CollectorRegistry:
        return self.app.metrics.registry

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
    app = TokenServiceApp(settings_for_tests(db_url, **{"refresh_grace_s": GRACE_S, **overrides}))
    await app.start()
    service = OAuthService(app)
    core = app.core
    # "web" and "post" hold the introspection permission (resource servers): they introspect
    # other clients' tokens; the others introspect only their own (test_introspection_limit.py).
    await service.register("web", audiences=["https://api.example"], introspect_all_tokens=True)
    await service.register("post", auth_method="client_secret_post", introspect_all_tokens=True)
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
    await service.app.stop(0)


@pytest.fixture
async def http(oauth_service: OAuthService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=oauth_service.url) as client:
        yield client


async def token_request(
    http: httpx.AsyncClient, service: OAuthService, client_id: str, data: dict[str, str]
) -> httpx.Response:
    """POST /oauth2/token as ``client_id``: Basic credentials, or ``client_id`` alone for a public client."""
    if client_id in service.secrets:
        return await http.post("/oauth2/token", data=data, headers=service.basic(client_id))
    return await http.post("/oauth2/token", data={**data, "client_id": client_id})


async def password_grant(
    http: httpx.AsyncClient, service: OAuthService, client_id: str = "web", **params: str
) -> httpx.Response:
    """POST a password grant for alice as ``client_id``."""
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD, **params}
    return await token_request(http, service, client_id, data)


async def refresh_grant(
    http: httpx.AsyncClient, service: OAuthService, client_id: str, refresh_token: str
) -> httpx.Response:
    """POST a refresh grant as ``client_id``."""
    return await token_request(
        http, service, client_id, {"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


# --- Kubernetes service-account federation (token_service/federation) and token exchange ---------

#: The audience the stand-in cluster mints projected tokens for (the trust file expects it).
SA_AUDIENCE = "https://token-service.test"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The trust file's mapping: one exact subject, one namespace pattern, and a service account
#: mapped to "web", a client that authenticates with a secret (so the mapping must not work).
SERVICE_ACCOUNTS = {
    "system:serviceaccount:shop:checkout": "checkout",
    "system:serviceaccount:shop:*": "shop-workloads",
    "system:serviceaccount:billing:invoicer": "web",
}


@dataclass
class Federated:
    """An OAuth service trusting a stand-in cluster issuer (single-use assertions, 5 s skew)."""

    service: OAuthService
    cluster: KubernetesIssuer

    def assertion(self, namespace: str = "shop", name: str = "checkout", **kwargs: Any) -> str:
        """A projected service-account token for the token service (overrides as KubernetesIssuer.token)."""
        return self.cluster.token(namespace, name, audience=kwargs.pop("audience", SA_AUDIENCE), **kwargs)

    def assertion_outcomes(self, outcome: str) -> float:
        value = self.service.registry.get_sample_value("native_iam_client_assertions_total", {"outcome": outcome})
        return value or 0.0


async def start_federated_service(db_url: str, cluster: KubernetesIssuer, directory: Path) -> Federated:
    trust = cluster.trust_file(
        directory,
        audience=SA_AUDIENCE,
        service_accounts=SERVICE_ACCOUNTS,
        single_use=True,
        clock_skew_s=5,
        max_lifetime_s=7200,
        jwks_refetch_interval_s=0,
    )
    service = await start_oauth_service(db_url, cluster_issuers_file=trust)
    # Service-account clients also hold client_credentials (issue 13): a token as themselves.
    sa = {
        "auth_method": "kubernetes_service_account",
        "grant_types": [TOKEN_EXCHANGE, "client_credentials"],
        "scopes": ["orders:read"],
    }
    await service.register("checkout", **sa, exchange_audiences=["orders", "payments"])
    await service.register("shop-workloads", **sa, exchange_audiences=["orders"])
    await service.register("exchanger", grant_types=[TOKEN_EXCHANGE], exchange_audiences=["orders"])
    return Federated(service, cluster)


@pytest.fixture
async def federated(db_url: str, tmp_path: Path, k8s_issuer: KubernetesIssuer) -> AsyncIterator[Federated]:
    """On SQLite and PostgreSQL (single-use jtis and exchanged tokens live in the store)."""
    federated = await start_federated_service(db_url, k8s_issuer, tmp_path)
    yield federated
    await federated.service.app.stop(0)


@pytest.fixture
async def federated_sqlite(tmp_path: Path, k8s_issuer: KubernetesIssuer) -> AsyncIterator[Federated]:
    """The same on SQLite only: for refusals decided before the store is touched."""
    federated = await start_federated_service(f"sqlite:///{tmp_path / 'fed.db'}", k8s_issuer, tmp_path)
    yield federated
    await federated.service.app.stop(0)


async def introspect_as(http: httpx.AsyncClient, assertion: str, **extra: str) -> httpx.Response:
    """POST /oauth2/introspect authenticated by a client assertion (RFC 7523 §2.2)."""
    data = {"token": "not.a.token", "client_assertion_type": JWT_BEARER, "client_assertion": assertion, **extra}
    return await http.post("/oauth2/introspect", data=data)
