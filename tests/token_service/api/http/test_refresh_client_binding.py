"""F3: a refresh token stays bound to the OAuth client it was issued to, whichever transport refreshes it.

gRPC RefreshToken (and the sidecar's facade, which forwards it) has no client authentication:
a refresh token of a confidential client is refused there (TOKEN_INVALID); one of a public
client is refreshed with exactly that client's context (audience, TTLs, rotation and reuse
detection), as at the HTTP token endpoint (RFC 6749 §6, RFC 9700 §4.14).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from sidecar.oauth_facade import OAuthFacade
from sidecar.settings import Settings as SidecarSettings
from tests.sidecar._feed import AUDIENCE, ISSUER, Issuer
from tests.sidecar.conftest import loaded_store, synced_cache
from tests.token_service.api.http.conftest import GRACE_S, PASSWORD, OAuthService, password_grant, refresh_grant
from token_service.admin.clients import delete_client
from token_service.tokens import TokenClaims

Status = oauth_pb2.RefreshTokenResponse.Status


@pytest.fixture
async def grpc_oauth(oauth_service: OAuthService) -> AsyncIterator[oauth_pb2_grpc.OAuthStub]:
    async with grpc.aio.insecure_channel(oauth_service.app.grpc_target) as channel:
        yield oauth_pb2_grpc.OAuthStub(channel)


@pytest.fixture
async def facade_oauth(oauth_service: OAuthService) -> AsyncIterator[oauth_pb2_grpc.OAuthStub]:
    """A sidecar OAuth facade (in process) forwarding to the running token service."""
    target = oauth_service.app.grpc_target
    token_channel = grpc.aio.insecure_channel(target)
    facade = OAuthFacade(
        SidecarSettings(issuer=ISSUER, audiences=(AUDIENCE,), token_url=target, forward_timeout_s=5.0),
        loaded_store(Issuer()),
        synced_cache(),
        token_channel=token_channel,
    )
    server = grpc.aio.server()
    oauth_pb2_grpc.add_OAuthServicer_to_server(facade, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield oauth_pb2_grpc.OAuthStub(channel)
    await server.stop(0)
    await token_channel.close()


def _claims(service: OAuthService, token: str) -> TokenClaims:
    return service.core.codec.verify(token, service.core.clock())


def _after_grace(service: OAuthService) -> None:
    later = service.core.clock() + GRACE_S + 1
    service.core.clock = lambda: later


@pytest.fixture
async def api_spa(oauth_service: OAuthService) -> str:
    """A public client with its own audience and a short access-token lifetime (rotation on by default)."""
    await oauth_service.register(
        "api-spa", auth_method="none", audiences=["https://api.example"], access_token_ttl_s=300
    )
    return "api-spa"


async def test_confidential_client_refresh_token_is_refused_over_grpc(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub
) -> None:
    """A refresh token of the confidential client "web" cannot be refreshed without its secret:
    gRPC RefreshToken answers TOKEN_INVALID and issues nothing."""
    refresh = (await password_grant(http, oauth_service, scope="orders:read")).json()["refresh_token"]
    response = await grpc_oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=refresh))
    assert response.status == Status.TOKEN_INVALID and not response.access_token and not response.refresh_token
    # The client itself still refreshes it at the token endpoint.
    again = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        headers=oauth_service.basic("web"),
    )
    assert again.status_code == 200


async def test_confidential_client_refresh_token_is_refused_through_the_sidecar_facade(
    http: httpx.AsyncClient, oauth_service: OAuthService, facade_oauth: oauth_pb2_grpc.OAuthStub
) -> None:
    """The sidecar forwards RefreshToken; the token service's refusal reaches the workload."""
    refresh = (await password_grant(http, oauth_service, scope="orders:read")).json()["refresh_token"]
    response = await facade_oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=refresh))
    assert response.status == Status.TOKEN_INVALID and not response.access_token


async def test_public_client_refresh_over_grpc_applies_that_clients_context(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub, api_spa: str
) -> None:
    """Over gRPC a public client's refresh token yields that client's token: its audience, client
    id and access-token lifetime, and (rotation) a new refresh token; the parent is spent."""
    first = (await password_grant(http, oauth_service, api_spa, scope="orders:read")).json()
    response = await grpc_oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=first["refresh_token"]))
    assert response.status == Status.OK and response.expires_in == 300 and response.refresh_token
    access = _claims(oauth_service, response.access_token)
    assert access.audience == ("https://api.example",) and access.client_id == api_spa
    assert _claims(oauth_service, response.refresh_token).client_id == api_spa


async def test_public_client_refresh_through_the_facade_rotates(
    http: httpx.AsyncClient, oauth_service: OAuthService, facade_oauth: oauth_pb2_grpc.OAuthStub, api_spa: str
) -> None:
    """Through the sidecar facade too: the client's context and a rotated refresh token."""
    first = (await password_grant(http, oauth_service, api_spa, scope="orders:read")).json()
    response = await facade_oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=first["refresh_token"]))
    assert response.status == Status.OK and response.expires_in == 300 and response.refresh_token
    assert _claims(oauth_service, response.access_token).audience == ("https://api.example",)


async def test_grpc_rotation_then_http_replay_revokes_the_family(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub, api_spa: str
) -> None:
    """Rotated over gRPC, replayed over HTTP after the grace window: reuse, the family is revoked."""
    first = (await password_grant(http, oauth_service, api_spa, scope="orders:read")).json()
    rotated = await grpc_oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=first["refresh_token"]))
    assert rotated.status == Status.OK and rotated.refresh_token
    _after_grace(oauth_service)
    replay = await refresh_grant(http, oauth_service, api_spa, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    child = await grpc_oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=rotated.refresh_token))
    assert child.status == Status.TOKEN_DISABLED


async def test_grpc_replay_within_grace_gets_a_fresh_pair_of_the_same_family(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub, api_spa: str
) -> None:
    """Two gRPC refreshes of one public token: the second is a retry within the grace window and
    gets a fresh pair, as at the token endpoint; the first gRPC refresh really spent the token."""
    first = (await password_grant(http, oauth_service, api_spa, scope="orders:read")).json()
    request = oauth_pb2.RefreshTokenRequest(refresh_token=first["refresh_token"])
    one, two = await grpc_oauth.RefreshToken(request), await grpc_oauth.RefreshToken(request)
    assert one.status == two.status == Status.OK and one.refresh_token != two.refresh_token
    _after_grace(oauth_service)
    assert (await grpc_oauth.RefreshToken(request)).status == Status.TOKEN_DISABLED


async def test_refresh_token_of_a_deleted_public_client_is_refused_over_grpc(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub, api_spa: str
) -> None:
    """Deleting a client ends its refresh tokens over gRPC as it does at the token endpoint."""
    first = (await password_grant(http, oauth_service, api_spa, scope="orders:read")).json()
    await delete_client(oauth_service.core, api_spa)
    response = await grpc_oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=first["refresh_token"]))
    assert response.status == Status.TOKEN_INVALID


async def test_grpc_refresh_token_still_refreshes_over_grpc(
    oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub
) -> None:
    """Tokens of the gRPC API itself keep their context: NATIVE_IAM_AUDIENCE, no rotation."""
    created = await grpc_oauth.CreateTokenWithPassword(
        oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password=PASSWORD, scopes=["orders:read"])
    )
    response = await grpc_oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=created.refresh_token))
    assert response.status == Status.OK and not response.refresh_token
    access = _claims(oauth_service, response.access_token)
    assert access.client_id == oauth_service.core.settings.grpc_client_id
    assert access.audience == (oauth_service.core.settings.audience,)
