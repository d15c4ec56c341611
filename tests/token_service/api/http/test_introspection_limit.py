"""RFC 7662 §4: a client introspects only its own tokens and tokens issued for one of its
audiences, unless it holds the introspection permission (``introspect_all_tokens``); anything
else is exactly ``{"active": false}`` (§2.2: no hint that the token exists)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.api.http.conftest import PASSWORD, OAuthService, password_grant
from token_service import clients


async def _introspect(http: httpx.AsyncClient, service: OAuthService, client_id: str, token: str) -> dict[str, object]:
    response = await http.post("/oauth2/introspect", data={"token": token}, headers=service.basic(client_id))
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def grpc_token(oauth_service: OAuthService) -> str:
    """An access token of the gRPC API (client_id and aud NATIVE_IAM_AUDIENCE)."""
    async with grpc.aio.insecure_channel(oauth_service.app.grpc_target) as channel:
        created = await oauth_pb2_grpc.OAuthStub(channel).CreateTokenWithPassword(
            oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password=PASSWORD, scopes=["orders:read"])
        )
    return created.access_token


@pytest.fixture
async def resource_server(oauth_service: OAuthService) -> AsyncIterator[str]:
    """A confidential client without the permission, whose audience is web's."""
    await oauth_service.register("orders-api", audiences=["https://api.example"], grant_types=["password"])
    yield "orders-api"


async def test_another_clients_tokens_are_inactive(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """ "rotating" (no permission, no audience of web's) sees web's live access and refresh tokens
    as exactly {"active": false}."""
    tokens = (await password_grant(http, oauth_service, "web", scope="orders:read")).json()
    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert await _introspect(http, oauth_service, "rotating", token) == {"active": False}
        assert (await _introspect(http, oauth_service, "web", token))["active"] is True


async def test_own_tokens_are_introspected(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A client without the permission still introspects its own access and refresh tokens."""
    tokens = (await password_grant(http, oauth_service, "rotating", scope="orders:read")).json()
    access = await _introspect(http, oauth_service, "rotating", tokens["access_token"])
    assert access["active"] is True and access["client_id"] == "rotating" and access["scope"] == "orders:read"
    refresh = await _introspect(http, oauth_service, "rotating", tokens["refresh_token"])
    assert refresh["active"] is True and refresh["token_usage"] == "refresh_token"


async def test_tokens_for_its_audience_are_introspected(
    http: httpx.AsyncClient, oauth_service: OAuthService, resource_server: str
) -> None:
    """A resource server introspects access tokens issued for its audience, not the refresh
    token of the same grant (whose audience is the issuer)."""
    tokens = (await password_grant(http, oauth_service, "web", scope="orders:read")).json()
    access = await _introspect(http, oauth_service, resource_server, tokens["access_token"])
    assert access["active"] is True and access["aud"] == "https://api.example"
    assert await _introspect(http, oauth_service, resource_server, tokens["refresh_token"]) == {"active": False}


async def test_the_shared_default_audience_grants_nothing(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_token: str
) -> None:
    """A client without configured audiences has NATIVE_IAM_AUDIENCE by default, as every gRPC
    token does: that does not make the gRPC API's tokens its own."""
    assert await _introspect(http, oauth_service, "rotating", grpc_token) == {"active": False}
    assert (await _introspect(http, oauth_service, "web", grpc_token))["active"] is True


async def test_the_issuer_as_audience_does_not_open_refresh_tokens(
    http: httpx.AsyncClient, oauth_service: OAuthService
) -> None:
    """A refresh token's aud is the issuer; a client configured with that audience still does
    not see other clients' refresh tokens (only access tokens are "for" a resource server)."""
    issuer = oauth_service.core.settings.issuer
    await oauth_service.register("sneaky", audiences=[issuer], grant_types=["password"])
    refresh = (await password_grant(http, oauth_service, "web", scope="orders:read")).json()["refresh_token"]
    assert await _introspect(http, oauth_service, "sneaky", refresh) == {"active": False}


def test_public_client_cannot_hold_the_permission() -> None:
    """Public clients may not introspect at all, so the permission is refused at definition."""
    with pytest.raises(clients.ClientError):
        clients.new_client("spa2", auth_method="none", server_key=b"k" * 32, introspect_all_tokens=True)
