"""A real OAuth client library, unchanged, against a running token service (Authlib's httpx client).

Authlib's AsyncOAuth2Client is what an application would use; nothing here adapts it to us.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import pytest
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # Authlib 1.9 prefers the httpx2 package and warns once when it falls back to httpx (its
    # own "always" filter is installed by the import above, so ours must come after it).
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client
    from authlib.integrations.httpx_client import OAuthError as AuthlibOAuthError

from authlib.common.urls import add_params_to_qs

from tests.token_service.api.http.conftest import (
    ACCESS_TOKEN_TYPE,
    JWT_BEARER,
    PASSWORD,
    TOKEN_EXCHANGE,
    Federated,
    OAuthService,
)


async def test_password_flow_with_client_secret_basic(oauth_service: OAuthService) -> None:
    """fetch_token(username, password) with Basic client auth returns a usable bearer token."""
    async with AsyncOAuth2Client("web", oauth_service.secrets["web"], scope="openid orders:read") as client:
        token = await client.fetch_token(f"{oauth_service.url}/oauth2/token", username="alice", password=PASSWORD)
        assert token["token_type"] == "Bearer" and token["scope"] == "openid orders:read"
        assert token["expires_at"] > time.time() and token["refresh_token"] and token["id_token"]
        userinfo = await client.get(f"{oauth_service.url}/oauth2/userinfo")
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == "alice"


async def test_password_flow_with_client_secret_post(oauth_service: OAuthService) -> None:
    """The same flow with client_secret_post."""
    async with AsyncOAuth2Client(
        "post", oauth_service.secrets["post"], token_endpoint_auth_method="client_secret_post"
    ) as client:
        token = await client.fetch_token(
            f"{oauth_service.url}/oauth2/token", username="alice", password=PASSWORD, scope="orders:read"
        )
    assert token["scope"] == "orders:read"


async def test_password_flow_public_client(oauth_service: OAuthService) -> None:
    """A public client (token_endpoint_auth_method none) gets tokens with its client_id alone."""
    async with AsyncOAuth2Client("spa", token_endpoint_auth_method="none") as client:
        token = await client.fetch_token(f"{oauth_service.url}/oauth2/token", username="alice", password=PASSWORD)
    assert token["access_token"] and token["refresh_token"]


async def test_refresh_flow(oauth_service: OAuthService) -> None:
    """refresh_token() returns a new access token with the same scope; with rotation a new refresh token."""
    url = f"{oauth_service.url}/oauth2/token"
    async with AsyncOAuth2Client("rotating", oauth_service.secrets["rotating"], scope="orders:read") as client:
        first = await client.fetch_token(url, username="alice", password=PASSWORD)
        second = await client.refresh_token(url, refresh_token=first["refresh_token"])
    assert second["access_token"] != first["access_token"] and second["scope"] == "orders:read"
    assert second["refresh_token"] != first["refresh_token"]


async def test_automatic_refresh_of_an_expired_token(oauth_service: OAuthService) -> None:
    """With token_endpoint set, Authlib refreshes an expired token by itself before a request."""
    url = f"{oauth_service.url}/oauth2/token"
    updated: list[dict[str, object]] = []

    async def update_token(token: dict[str, object], refresh_token: str | None = None) -> None:
        updated.append(token)

    async with AsyncOAuth2Client(
        "web", oauth_service.secrets["web"], scope="openid", token_endpoint=url, update_token=update_token
    ) as client:
        token = await client.fetch_token(url, username="alice", password=PASSWORD)
        client.token = {**token, "expires_at": int(time.time()) - 10}
        response = await client.get(f"{oauth_service.url}/oauth2/userinfo")
    assert response.status_code == 200 and len(updated) == 1
    assert updated[0]["access_token"] != token["access_token"]


async def test_wrong_password_raises_invalid_grant(oauth_service: OAuthService) -> None:
    """Authlib surfaces our RFC 6749 §5.2 error as OAuthError('invalid_grant')."""
    async with AsyncOAuth2Client("web", oauth_service.secrets["web"]) as client:
        with pytest.raises(AuthlibOAuthError) as caught:
            await client.fetch_token(f"{oauth_service.url}/oauth2/token", username="alice", password="nope")
    assert caught.value.error == "invalid_grant"


async def test_sync_session_password_and_refresh(oauth_service: OAuthService) -> None:
    """Authlib's blocking OAuth2Client (an OAuth2Session on httpx) runs both flows unchanged."""
    url = f"{oauth_service.url}/oauth2/token"

    def flows() -> tuple[dict[str, object], dict[str, object]]:
        with OAuth2Client("web", oauth_service.secrets["web"], scope="orders:read") as session:
            token = session.fetch_token(url, username="alice", password=PASSWORD)
            refreshed = session.refresh_token(url, refresh_token=token["refresh_token"])
        return token, refreshed

    token, refreshed = await asyncio.to_thread(flows)
    assert token["scope"] == refreshed["scope"] == "orders:read"
    assert refreshed["access_token"] != token["access_token"]


async def test_token_exchange_with_client_secret(federated_sqlite: Federated) -> None:
    """fetch_token(grant_type=token-exchange, subject_token=…, audience=…) with Basic client auth (RFC 8693)."""
    service = federated_sqlite.service
    url = f"{service.url}/oauth2/token"
    async with AsyncOAuth2Client("web", service.secrets["web"], scope="orders:read") as user:
        subject = await user.fetch_token(url, username="alice", password=PASSWORD)
    async with AsyncOAuth2Client("exchanger", service.secrets["exchanger"]) as workload:
        token = await workload.fetch_token(
            url,
            grant_type=TOKEN_EXCHANGE,
            subject_token=subject["access_token"],
            subject_token_type=ACCESS_TOKEN_TYPE,
            audience="orders",
        )
    assert token["issued_token_type"] == ACCESS_TOKEN_TYPE and token["scope"] == "orders:read"
    assert "refresh_token" not in token


async def test_token_exchange_with_service_account_assertion(federated_sqlite: Federated) -> None:
    """The workload's projected service-account token as RFC 7523 client assertion, sent by an auth
    method registered through Authlib's own extension point (register_client_auth_method)."""
    service = federated_sqlite.service
    url = f"{service.url}/oauth2/token"
    async with AsyncOAuth2Client("web", service.secrets["web"], scope="orders:read") as user:
        subject = await user.fetch_token(url, username="alice", password=PASSWORD)
    projected = federated_sqlite.assertion()  # what the kubelet writes into the pod

    def service_account(auth: object, method: str, uri: str, headers: dict[str, str], body: str) -> tuple[Any, ...]:
        return (
            uri,
            headers,
            add_params_to_qs(body or "", [("client_assertion_type", JWT_BEARER), ("client_assertion", projected)]),
        )

    async with AsyncOAuth2Client("checkout", token_endpoint_auth_method="kubernetes_service_account") as workload:
        workload.register_client_auth_method(("kubernetes_service_account", service_account))
        token = await workload.fetch_token(
            url,
            grant_type=TOKEN_EXCHANGE,
            subject_token=subject["access_token"],
            subject_token_type=ACCESS_TOKEN_TYPE,
            resource="payments",
        )
    assert token["issued_token_type"] == ACCESS_TOKEN_TYPE and token["access_token"]
