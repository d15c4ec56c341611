"""grant_type=client_credentials at POST /oauth2/token (RFC 6749 §4.4, issue 13): Authlib's client
unchanged, the refusals, RFC 8707 resource, RFC 7009/7662 on client tokens, userinfo, the
disabled client at every endpoint, the admin API and CLI."""

from __future__ import annotations

import asyncio
import io
import warnings

import grpc
import httpx
import jwt
import pytest
from authlib.deprecate import AuthlibDeprecationWarning

from native_iam.admin.v1 import admin_pb2 as pb
from native_iam.admin.v1 import admin_pb2_grpc
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.api.http.conftest import JWT_BEARER, PASSWORD, Federated, OAuthService, token_request
from token_service.admin import ensure_identity
from token_service.admin.clients import set_client_enabled
from token_service.cli.admin import main

with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

GRANTS = ["client_credentials"]
POLICY = ["orders:read", "inventory:*"]


@pytest.fixture
async def svc(oauth_service: OAuthService) -> str:
    """A confidential client with the client_credentials grant and a scope policy."""
    await oauth_service.register("svc", grant_types=GRANTS, scopes=POLICY, audiences=["orders", "billing"])
    return "svc"


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


async def _cc(http: httpx.AsyncClient, service: OAuthService, client_id: str = "svc", **params: str) -> httpx.Response:
    return await token_request(http, service, client_id, {"grant_type": "client_credentials", **params})


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_authlib_client_credentials(oauth_service: OAuthService, method: str) -> None:
    """Authlib's fetch_token(grant_type=client_credentials), Basic and post client auth: a bearer
    token naming the client, with the requested scope and no refresh token."""
    client_id = f"svc-{method}"
    await oauth_service.register(client_id, auth_method=method, grant_types=GRANTS, scopes=POLICY)
    async with AsyncOAuth2Client(
        client_id, oauth_service.secrets[client_id], token_endpoint_auth_method=method, scope="inventory:write"
    ) as client:
        token = await client.fetch_token(f"{oauth_service.url}/oauth2/token", grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "inventory:write"
    assert "refresh_token" not in token and "id_token" not in token
    body = _claims(token["access_token"])
    assert (body["sub"], body["client_id"], body["sub_kind"]) == (client_id, client_id, "client")


async def test_default_scope_and_audiences(http: httpx.AsyncClient, oauth_service: OAuthService, svc: str) -> None:
    """No scope: the policy's concrete scopes (wildcards are not scopes); aud: every audience."""
    response = await _cc(http, oauth_service)
    assert response.status_code == 200 and response.json()["scope"] == "orders:read"
    assert _claims(response.json()["access_token"])["aud"] == ["orders", "billing"]


async def test_resource_narrows_the_audience(http: httpx.AsyncClient, oauth_service: OAuthService, svc: str) -> None:
    """RFC 8707: resource=orders → aud orders; a resource not among the client's → invalid_target."""
    response = await _cc(http, oauth_service, resource="orders")
    assert _claims(response.json()["access_token"])["aud"] == "orders"
    refused = await _cc(http, oauth_service, resource="https://elsewhere")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"


@pytest.mark.parametrize("scope", ["orders:write", "inventory", "openid", "orders:read admin:all"])
async def test_scope_outside_the_policy_is_invalid_scope(
    http: httpx.AsyncClient, oauth_service: OAuthService, svc: str, scope: str
) -> None:
    """A scope the client's policy does not cover (openid: no end-user) → 400 invalid_scope."""
    response = await _cc(http, oauth_service, scope=scope)
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


async def test_public_client_and_client_without_the_grant_are_unauthorized_client(
    http: httpx.AsyncClient, oauth_service: OAuthService
) -> None:
    """The public client "spa" and "web" (password, refresh_token only) → 400 unauthorized_client."""
    for client_id in ("spa", "web"):
        response = await _cc(http, oauth_service, client_id)
        assert response.status_code == 400 and response.json()["error"] == "unauthorized_client", client_id


async def test_wrong_secret_is_invalid_client(http: httpx.AsyncClient, oauth_service: OAuthService, svc: str) -> None:
    """A wrong secret → 401 invalid_client, never a token."""
    response = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=("svc", "wrong"))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


async def test_introspect_and_revoke_a_client_token(
    http: httpx.AsyncClient, oauth_service: OAuthService, svc: str
) -> None:
    """RFC 7662: active, sub_kind client, no username; RFC 7009 by the client: then inactive, and
    CheckAccess over gRPC says TOKEN_DISABLED."""
    token = (await _cc(http, oauth_service)).json()["access_token"]
    info = (await http.post("/oauth2/introspect", data={"token": token}, headers=oauth_service.basic("web"))).json()
    assert info["active"] and info["sub"] == "svc" and info["sub_kind"] == "client" and "username" not in info
    revoked = await http.post("/oauth2/revoke", data={"token": token}, headers=oauth_service.basic("svc"))
    assert revoked.status_code == 200
    info = (await http.post("/oauth2/introspect", data={"token": token}, headers=oauth_service.basic("web"))).json()
    assert info == {"active": False}
    async with grpc.aio.insecure_channel(oauth_service.app.grpc_target) as channel:
        checked = await oauth_pb2_grpc.OAuthStub(channel).CheckAccess(oauth_pb2.CheckAccessRequest(access_token=token))
    assert checked.status == oauth_pb2.CheckAccessResponse.TOKEN_DISABLED


async def test_check_access_names_no_identity_and_userinfo_refuses(
    http: httpx.AsyncClient, oauth_service: OAuthService, svc: str
) -> None:
    """The seed CheckAccess: OK with an empty identity (sub is a client id); userinfo: 403."""
    token = (await _cc(http, oauth_service)).json()["access_token"]
    async with grpc.aio.insecure_channel(oauth_service.app.grpc_target) as channel:
        checked = await oauth_pb2_grpc.OAuthStub(channel).CheckAccess(oauth_pb2.CheckAccessRequest(access_token=token))
    assert checked.status == oauth_pb2.CheckAccessResponse.OK and checked.identity == "" and checked.namespace == ""
    userinfo = await http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert userinfo.status_code == 403 and "insufficient_scope" in userinfo.headers["www-authenticate"]


async def test_disabled_client_is_invalid_client_everywhere(
    http: httpx.AsyncClient, oauth_service: OAuthService, svc: str
) -> None:
    """Disabled: invalid_client at token, revoke and introspect; its token is inactive."""
    token = (await _cc(http, oauth_service)).json()["access_token"]
    await set_client_enabled(oauth_service.core, "svc", False)
    for path, data in (
        ("/oauth2/token", {"grant_type": "client_credentials"}),
        ("/oauth2/revoke", {"token": token}),
        ("/oauth2/introspect", {"token": token}),
    ):
        response = await http.post(path, data=data, headers=oauth_service.basic("svc"))
        assert response.status_code == 401 and response.json()["error"] == "invalid_client", path
    info = (await http.post("/oauth2/introspect", data={"token": token}, headers=oauth_service.basic("web"))).json()
    assert info == {"active": False}


async def test_grant_outcomes_are_counted(http: httpx.AsyncClient, oauth_service: OAuthService, svc: str) -> None:
    """native_iam_grants_total{grant="client_credentials"} counts OK and refusals like other grants."""
    await _cc(http, oauth_service)
    await _cc(http, oauth_service, scope="orders:write")
    value = oauth_service.registry.get_sample_value
    assert value("native_iam_grants_total", {"grant": "client_credentials", "status": "OK"}) == 1
    assert value("native_iam_grants_total", {"grant": "client_credentials", "status": "UNAUTHORIZED"}) == 1


async def test_admin_api_and_cli_manage_scopes_and_enabled(
    oauth_service: OAuthService, http: httpx.AsyncClient
) -> None:
    """CreateClient(scopes), SetClientScopes, SetClientEnabled over gRPC, and the CLI's
    create --scope / set-scopes / disable / enable."""
    await ensure_identity(oauth_service.core, "", "root", PASSWORD, ["iam:admin"])
    async with grpc.aio.insecure_channel(oauth_service.app.grpc_target) as channel:
        issued = await oauth_pb2_grpc.OAuthStub(channel).CreateTokenWithPassword(
            oauth_pb2.CreateTokenWithPasswordRequest(identity="root", password=PASSWORD, scopes=["iam:admin"])
        )
        md = (("authorization", f"Bearer {issued.access_token}"),)
        stub = admin_pb2_grpc.ClientsStub(channel)
        created = await stub.CreateClient(
            pb.CreateClientRequest(client_id="m2m", grant_types=GRANTS, scopes=["a:*", "b"]), metadata=md
        )
        assert list(created.client.scopes) == ["a:*", "b"] and created.client.enabled
        changed = await stub.SetClientScopes(pb.SetClientScopesRequest(client_id="m2m", scopes=["c"]), metadata=md)
        assert list(changed.scopes) == ["c"]
        off = await stub.SetClientEnabled(pb.SetClientEnabledRequest(client_id="m2m", enabled=False), metadata=md)
        assert not off.enabled
        for call, request in (
            (stub.SetClientScopes, pb.SetClientScopesRequest(client_id="m2m", scopes=["bad scope"])),
            (stub.CreateClient, pb.CreateClientRequest(client_id="pub", token_endpoint_auth_method="none",
                                                       grant_types=GRANTS)),
        ):  # fmt: skip
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(request, metadata=md)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SetClientEnabled(pb.SetClientEnabledRequest(client_id="nobody"), metadata=md)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    argv = ["--url", oauth_service.app.grpc_target, "--token", issued.access_token, "clients"]

    async def run(*args: str) -> str:
        out = io.StringIO()
        assert await asyncio.to_thread(main, [*argv, *args], io.StringIO(""), out) == 0
        return out.getvalue()

    secret = (
        (await run("create", "cli-m2m", "--grant", "client_credentials", "--scope", "x:*"))
        .split("client_secret: ")[1]
        .split()[0]
    )
    assert "x:*" in await run("get", "cli-m2m")
    assert " y " in await run("set-scopes", "cli-m2m", "y") + " "
    assert (
        await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=("cli-m2m", secret))
    ).json()["scope"] == "y"
    await run("disable", "cli-m2m")
    refused = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=("cli-m2m", secret))
    assert refused.status_code == 401
    await run("enable", "cli-m2m")
    ok = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=("cli-m2m", secret))
    assert ok.status_code == 200


async def test_client_credentials_with_a_service_account_assertion(federated: Federated) -> None:
    """RFC 7523 §2.2 on the client credentials grant: the workload's projected service-account
    token, no secret, gets a token of its mapped client "checkout"; the assertion is single-use."""
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": federated.assertion(),
    }
    async with httpx.AsyncClient(base_url=federated.service.url) as http:
        response = await http.post("/oauth2/token", data=data)
        assert response.status_code == 200, response.text
        body = _claims(response.json()["access_token"])
        assert (body["sub"], body["sub_kind"], body["scope"]) == ("checkout", "client", "orders:read")
        replay = await http.post("/oauth2/token", data=data)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
