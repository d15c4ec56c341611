"""One implementation, two transports: tokens from HTTP and from gRPC are interchangeable."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from native_iam.limits import MAX_SCOPE_LENGTH, MAX_SCOPES
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.api.http.conftest import GRACE_S, PASSWORD, OAuthService, password_grant, refresh_grant


@pytest.fixture
async def grpc_oauth(oauth_service: OAuthService) -> AsyncIterator[oauth_pb2_grpc.OAuthStub]:
    async with grpc.aio.insecure_channel(oauth_service.app.grpc_target) as channel:
        yield oauth_pb2_grpc.OAuthStub(channel)


async def test_http_access_token_passes_grpc_check_access(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub
) -> None:
    """An access token from POST /oauth2/token is OK for gRPC CheckAccess with its scope."""
    token = (await password_grant(http, oauth_service, scope="orders:read")).json()["access_token"]
    response = await grpc_oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=token, scopes=["orders:read"]))
    assert response.status == oauth_pb2.CheckAccessResponse.OK and response.identity == "alice"


async def test_http_revocation_is_seen_by_grpc(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub
) -> None:
    """A token revoked over HTTP is TOKEN_DISABLED for gRPC CheckAccess."""
    token = (await password_grant(http, oauth_service, scope="orders:read")).json()["access_token"]
    await http.post("/oauth2/revoke", data={"token": token}, headers=oauth_service.basic("web"))
    response = await grpc_oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=token))
    assert response.status == oauth_pb2.CheckAccessResponse.TOKEN_DISABLED


async def test_grpc_access_token_works_over_http(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub
) -> None:
    """An access token from gRPC CreateTokenWithPassword introspects active and opens /oauth2/userinfo."""
    created = await grpc_oauth.CreateTokenWithPassword(
        oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password=PASSWORD, scopes=["openid", "orders:read"])
    )
    assert created.status == oauth_pb2.CreateTokenWithPasswordResponse.OK
    introspected = await http.post(
        "/oauth2/introspect", data={"token": created.access_token}, headers=oauth_service.basic("web")
    )
    assert introspected.json()["active"] is True and introspected.json()["client_id"] == "native-iam"
    userinfo = await http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {created.access_token}"})
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == "alice"


async def test_http_refresh_token_works_over_grpc(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub
) -> None:
    """A public client's refresh token from HTTP refreshes over gRPC RefreshToken with the same
    scopes (a confidential client's is refused there: see test_refresh_client_binding.py)."""
    refresh = (await password_grant(http, oauth_service, "spa", scope="orders:read")).json()["refresh_token"]
    response = await grpc_oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=refresh))
    assert response.status == oauth_pb2.RefreshTokenResponse.OK and list(response.scopes) == ["orders:read"]


async def test_same_refusal_over_both_transports(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub
) -> None:
    """A wrong password is CREDENTIALS_INVALID over gRPC and invalid_grant over HTTP (one table)."""
    over_grpc = await grpc_oauth.CreateTokenWithPassword(
        oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password="wrong")
    )
    over_http = await http.post(
        "/oauth2/token",
        data={"grant_type": "password", "username": "alice", "password": "wrong"},
        headers=oauth_service.basic("web"),
    )
    assert over_grpc.status == oauth_pb2.CreateTokenWithPasswordResponse.CREDENTIALS_INVALID
    assert over_http.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "scopes",
    [
        ["orders:read"] * (MAX_SCOPES + 1),
        ['orders:"read'],
        ["o" * (MAX_SCOPE_LENGTH + 1)],
        [f"s{i}" for i in range(MAX_SCOPES + 1)],
    ],
    ids=["repeated", "quote", "too-long", "too-many"],
)
async def test_same_scope_rule_over_both_transports(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub, scopes: list[str]
) -> None:
    """One scope rule: what gRPC refuses as INVALID_ARGUMENT, HTTP refuses as 400 invalid_scope."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_oauth.CreateTokenWithPassword(
            oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password=PASSWORD, scopes=scopes)
        )
    over_http = await password_grant(http, oauth_service, scope=" ".join(scopes))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (over_http.status_code, over_http.json()["error"]) == (400, "invalid_scope")


async def test_rotated_token_replayed_over_grpc_revokes_family(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_oauth: oauth_pb2_grpc.OAuthStub
) -> None:
    """A (public client's) refresh token rotated over HTTP and replayed over gRPC after the grace
    window is a reuse: TOKEN_DISABLED, and the family's newer refresh token stops working too."""
    first = (await password_grant(http, oauth_service, "spa", scope="orders:read")).json()
    rotated = await refresh_grant(http, oauth_service, "spa", first["refresh_token"])
    later = oauth_service.core.clock() + GRACE_S + 1
    oauth_service.core.clock = lambda: later
    replay = await grpc_oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=first["refresh_token"]))
    assert replay.status == oauth_pb2.RefreshTokenResponse.TOKEN_DISABLED
    child = await grpc_oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=rotated.json()["refresh_token"]))
    assert child.status == oauth_pb2.RefreshTokenResponse.TOKEN_DISABLED
