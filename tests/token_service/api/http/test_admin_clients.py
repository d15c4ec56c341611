"""token_service/api/grpc/clients.py: the admin gRPC Clients service over a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from native_iam.admin.v1 import admin_pb2 as pb
from native_iam.admin.v1 import admin_pb2_grpc
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.api.http.conftest import PASSWORD, OAuthService
from token_service.admin import ensure_identity


@pytest.fixture
async def channel(oauth_service: OAuthService) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(oauth_service.app.grpc_target) as channel:
        yield channel


async def _token(channel: grpc.aio.Channel, identity: str, scopes: list[str]) -> str:
    response = await oauth_pb2_grpc.OAuthStub(channel).CreateTokenWithPassword(
        oauth_pb2.CreateTokenWithPasswordRequest(identity=identity, password=PASSWORD, scopes=scopes)
    )
    assert response.status == oauth_pb2.CreateTokenWithPasswordResponse.OK
    return response.access_token


@pytest.fixture
async def admin_stub(
    oauth_service: OAuthService, channel: grpc.aio.Channel
) -> tuple[admin_pb2_grpc.ClientsStub, tuple[tuple[str, str], ...]]:
    await ensure_identity(oauth_service.core, "", "root", PASSWORD, ["iam:admin"])
    token = await _token(channel, "root", ["iam:admin"])
    return admin_pb2_grpc.ClientsStub(channel), (("authorization", f"Bearer {token}"),)


async def test_created_client_authenticates_over_http(
    oauth_service: OAuthService, admin_stub: tuple[admin_pb2_grpc.ClientsStub, tuple[tuple[str, str], ...]]
) -> None:
    """CreateClient returns the secret once; that client can then get tokens over HTTP."""
    stub, md = admin_stub
    created = await stub.CreateClient(
        pb.CreateClientRequest(client_id="made", audiences=["https://a"], access_token_ttl_s=120), metadata=md
    )
    assert created.client_secret and created.client.token_endpoint_auth_method == "client_secret_basic"
    assert list(created.client.grant_types) == ["password", "refresh_token"]
    async with httpx.AsyncClient(base_url=oauth_service.url) as http:
        response = await http.post(
            "/oauth2/token",
            data={"grant_type": "password", "username": "alice", "password": PASSWORD},
            auth=("made", created.client_secret),
        )
    assert response.status_code == 200 and response.json()["expires_in"] == 120


async def test_get_and_list_never_return_a_secret(
    admin_stub: tuple[admin_pb2_grpc.ClientsStub, tuple[tuple[str, str], ...]],
) -> None:
    """GetClient and ListClients describe clients without any secret material."""
    stub, md = admin_stub
    created = await stub.CreateClient(pb.CreateClientRequest(client_id="c1"), metadata=md)
    got = await stub.GetClient(pb.ClientRef(client_id="c1"), metadata=md)
    listed = await stub.ListClients(pb.ListClientsRequest(), metadata=md)
    assert got == created.client
    assert "c1" in [c.client_id for c in listed.clients]
    assert created.client_secret not in str(got) + str(listed)


async def test_public_client_rotation_default_and_override(
    admin_stub: tuple[admin_pb2_grpc.ClientsStub, tuple[tuple[str, str], ...]],
) -> None:
    """Unset rotate_refresh_tokens means on for public clients; an explicit false is kept."""
    stub, md = admin_stub
    spa = await stub.CreateClient(
        pb.CreateClientRequest(client_id="p1", token_endpoint_auth_method="none"), metadata=md
    )
    off = await stub.CreateClient(
        pb.CreateClientRequest(client_id="p2", token_endpoint_auth_method="none", rotate_refresh_tokens=False),
        metadata=md,
    )
    assert spa.client_secret == "" and spa.client.rotate_refresh_tokens is True
    assert off.client.rotate_refresh_tokens is False


async def test_deleted_client_is_refused_at_once(
    oauth_service: OAuthService, admin_stub: tuple[admin_pb2_grpc.ClientsStub, tuple[tuple[str, str], ...]]
) -> None:
    """After DeleteClient, the client's next grant is invalid_client."""
    stub, md = admin_stub
    created = await stub.CreateClient(pb.CreateClientRequest(client_id="gone"), metadata=md)
    await stub.DeleteClient(pb.ClientRef(client_id="gone"), metadata=md)
    async with httpx.AsyncClient(base_url=oauth_service.url) as http:
        response = await http.post(
            "/oauth2/token",
            data={"grant_type": "password", "username": "alice", "password": PASSWORD},
            auth=("gone", created.client_secret),
        )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (pb.CreateClientRequest(client_id="bad id"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            pb.CreateClientRequest(client_id="x", token_endpoint_auth_method="private_key_jwt"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (pb.CreateClientRequest(client_id="x", grant_types=["implicit"]), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.CreateClientRequest(client_id="x", access_token_ttl_s=-1), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.CreateClientRequest(client_id="web"), grpc.StatusCode.ALREADY_EXISTS),
        (
            pb.CreateClientRequest(client_id="p", token_endpoint_auth_method="none", introspect_all_tokens=True),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        # NATIVE_IAM_GRPC_CLIENT_ID (default native-iam): the gRPC API's tokens carry it.
        (
            pb.CreateClientRequest(client_id="native-iam", token_endpoint_auth_method="none"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
    ids=["bad-id", "bad-method", "bad-grant", "negative-ttl", "duplicate", "grpc-client-id", "public-introspector"],
)
async def test_invalid_create_requests(
    admin_stub: tuple[admin_pb2_grpc.ClientsStub, tuple[tuple[str, str], ...]],
    request_: pb.CreateClientRequest,
    code: grpc.StatusCode,
) -> None:
    """Malformed definitions are INVALID_ARGUMENT; a taken client_id is ALREADY_EXISTS."""
    stub, md = admin_stub
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateClient(request_, metadata=md)
    assert caught.value.code() == code


async def test_introspection_permission_is_granted_through_create_client(
    oauth_service: OAuthService,
    channel: grpc.aio.Channel,
    admin_stub: tuple[admin_pb2_grpc.ClientsStub, tuple[tuple[str, str], ...]],
) -> None:
    """introspect_all_tokens set by CreateClient is shown by GetClient and lets the client
    introspect a token that is neither its own nor for its audience (a gRPC token)."""
    stub, md = admin_stub
    created = await stub.CreateClient(pb.CreateClientRequest(client_id="rs", introspect_all_tokens=True), metadata=md)
    assert (await stub.GetClient(pb.ClientRef(client_id="rs"), metadata=md)).introspect_all_tokens
    plain = await stub.CreateClient(pb.CreateClientRequest(client_id="plain"), metadata=md)
    assert not plain.client.introspect_all_tokens
    token = await _token(channel, "alice", ["orders:read"])
    async with httpx.AsyncClient(base_url=oauth_service.url) as http:
        for client_id, secret, active in (("rs", created.client_secret, True), ("plain", plain.client_secret, False)):
            response = await http.post("/oauth2/introspect", data={"token": token}, auth=(client_id, secret))
            assert response.json()["active"] is active


async def test_unknown_client_is_not_found(
    admin_stub: tuple[admin_pb2_grpc.ClientsStub, tuple[tuple[str, str], ...]],
) -> None:
    """GetClient and DeleteClient of an unknown id are NOT_FOUND."""
    stub, md = admin_stub
    for call in (stub.GetClient, stub.DeleteClient):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(pb.ClientRef(client_id="nobody"), metadata=md)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_requires_an_admin_token(oauth_service: OAuthService, channel: grpc.aio.Channel) -> None:
    """Without a token: UNAUTHENTICATED; with a token lacking iam:admin: PERMISSION_DENIED."""
    stub = admin_pb2_grpc.ClientsStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListClients(pb.ListClientsRequest())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    token = await _token(channel, "alice", ["orders:read"])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListClients(pb.ListClientsRequest(), metadata=(("authorization", f"Bearer {token}"),))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_exchange_audiences_through_the_admin_api(
    admin_stub: tuple[admin_pb2_grpc.ClientsStub, tuple[tuple[str, str], ...]],
) -> None:
    """CreateClient.exchange_audiences (11) comes back as OAuthClient.exchange_audiences (13); a
    client without the token-exchange grant may not have any (INVALID_ARGUMENT)."""
    stub, md = admin_stub
    grant = "urn:ietf:params:oauth:grant-type:token-exchange"
    created = await stub.CreateClient(
        pb.CreateClientRequest(client_id="ex", grant_types=[grant], exchange_audiences=["orders"]), metadata=md
    )
    assert list(created.client.exchange_audiences) == ["orders"]
    assert list((await stub.GetClient(pb.ClientRef(client_id="ex"), metadata=md)).exchange_audiences) == ["orders"]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateClient(pb.CreateClientRequest(client_id="ex2", exchange_audiences=["orders"]), metadata=md)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as too_long:
        await stub.CreateClient(
            pb.CreateClientRequest(client_id="ex3", grant_types=[grant], exchange_audiences=["a" * 300]), metadata=md
        )
    assert too_long.value.code() is grpc.StatusCode.INVALID_ARGUMENT
