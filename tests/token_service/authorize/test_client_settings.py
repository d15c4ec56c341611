"""Issue 14, client settings: redirect URIs, post-logout URIs, first-party flag, consents (admin API + CLI)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import grpc
import pytest

from native_iam.admin.v1 import admin_pb2 as pb
from native_iam.admin.v1 import admin_pb2_grpc
from tests.token_service.api.http.conftest import PASSWORD, OAuthService
from token_service import clients, consents
from token_service.admin import ensure_identity
from token_service.admin.clients import delete_client
from token_service.cli.admin import main
from token_service.redirect_uris import RedirectUriError, is_registered, validate_redirect_uri

Stub = tuple[admin_pb2_grpc.ClientsStub, tuple[tuple[str, str], ...]]


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/cb",
        "https://app.example:8443/cb?x=1",
        "http://127.0.0.1:8080/cb",
        "http://[::1]/cb",
        "http://localhost:3000/callback",
        "com.example.app:/oauth2redirect",
    ],
)
def test_registrable_redirect_uris(uri: str) -> None:
    assert validate_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "/relative/cb",
        "app.example/cb",
        "https://app.example/cb#frag",
        "https://user:pw@app.example/cb",
        "http://app.example/cb",  # plain http only on loopback
        "http://127.0.0.1.evil.example/cb",
        "javascript:alert(1)",
        "data:text/html,hi",
        "myapp:/cb",  # a bare private-use scheme any app could claim
        "https://app.example/c b",
        "https://app.example/\x00",
        "https:///nohost",
        "https://app.example:99999/cb",
        "https://" + "a" * 2000 + ".example/",
    ],
)
def test_unregistrable_redirect_uris(uri: str) -> None:
    with pytest.raises(RedirectUriError):
        validate_redirect_uri(uri)


def test_matching_is_exact() -> None:
    registered = ("https://app.example/cb",)
    assert is_registered("https://app.example/cb", registered)
    for near in (
        "https://app.example/cb/",
        "https://app.example/cB",
        "https://APP.example/cb",
        "https://app.example/c",
    ):
        assert not is_registered(near, registered)
    assert not is_registered("https://app.example/cb?x=1", registered)


def test_authorization_code_needs_a_redirect_uri() -> None:
    with pytest.raises(clients.ClientError, match="redirect URI"):
        clients.new_client("c", server_key=b"k", grant_types=["authorization_code"])


@pytest.fixture
async def admin_stub(oauth_service: OAuthService) -> AsyncIterator[Stub]:
    await ensure_identity(oauth_service.core, "", "root", PASSWORD, ["iam:admin"])
    async with grpc.aio.insecure_channel(oauth_service.app.grpc_target) as channel:
        out = io.StringIO()
        code = await asyncio.to_thread(
            main,
            ["--url", oauth_service.app.grpc_target, "token", "root", "--password-stdin"],
            io.StringIO(PASSWORD),
            out,
        )
        assert code == 0
        yield admin_pb2_grpc.ClientsStub(channel), (("authorization", f"Bearer {out.getvalue().strip()}"),)


async def test_create_and_update_browser_settings(admin_stub: Stub) -> None:
    stub, md = admin_stub
    created = await stub.CreateClient(
        pb.CreateClientRequest(
            client_id="webapp",
            grant_types=["authorization_code", "refresh_token"],
            redirect_uris=["https://app.example/cb"],
            post_logout_redirect_uris=["https://app.example/bye"],
        ),
        metadata=md,
    )
    assert list(created.client.redirect_uris) == ["https://app.example/cb"] and not created.client.first_party
    assert created.client.require_pkce
    updated = await stub.SetClientRedirectUris(
        pb.SetClientRedirectUrisRequest(
            client_id="webapp", redirect_uris=["https://app.example/cb2", "http://127.0.0.1:9/cb"], first_party=True
        ),
        metadata=md,
    )
    assert list(updated.redirect_uris) == ["https://app.example/cb2", "http://127.0.0.1:9/cb"]
    assert list(updated.post_logout_redirect_uris) == [] and updated.first_party
    fetched = await stub.GetClient(pb.ClientRef(client_id="webapp"), metadata=md)
    assert fetched == updated


@pytest.mark.parametrize(
    "request_",
    [
        pb.SetClientRedirectUrisRequest(client_id="webapp", redirect_uris=["http://evil.example/cb"]),
        pb.SetClientRedirectUrisRequest(client_id="webapp", post_logout_redirect_uris=["javascript:alert(1)"]),
        pb.SetClientRedirectUrisRequest(client_id="webapp"),  # the code grant needs one
    ],
)
async def test_bad_redirect_settings_are_invalid_argument(
    admin_stub: Stub, request_: pb.SetClientRedirectUrisRequest
) -> None:
    stub, md = admin_stub
    await stub.CreateClient(
        pb.CreateClientRequest(
            client_id="webapp", grant_types=["authorization_code"], redirect_uris=["https://app.example/cb"]
        ),
        metadata=md,
    )
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.SetClientRedirectUris(request_, metadata=md)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_unknown_client_is_not_found(admin_stub: Stub) -> None:
    stub, md = admin_stub
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.SetClientRedirectUris(pb.SetClientRedirectUrisRequest(client_id="nope"), metadata=md)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_consents_list_and_revoke(oauth_service: OAuthService, admin_stub: Stub) -> None:
    stub, md = admin_stub
    core = oauth_service.core
    await oauth_service.register(
        "third", grant_types=["authorization_code"], redirect_uris=["https://third.example/cb"]
    )
    alice = await core.store.run_read(_identity, "", "alice")
    await consents.grant(core, alice.id, alice.uid, "third", ["openid"])
    await consents.grant(core, alice.id, alice.uid, "third", ["orders:read"])
    assert await consents.is_covered(core, alice.id, alice.uid, "third", ["openid", "orders:read"])
    assert not await consents.is_covered(core, alice.id, alice.uid, "third", ["orders:write"])
    assert not await consents.is_covered(core, alice.id, "another-incarnation", "third", ["openid"])
    listed = await stub.ListConsents(pb.ListConsentsRequest(client_id="third"), metadata=md)
    assert [(c.identity, list(c.scopes)) for c in listed.consents] == [("alice", ["openid", "orders:read"])]
    revoked = await stub.RevokeConsent(pb.RevokeConsentRequest(identity="alice", client_id="third"), metadata=md)
    assert revoked.revoked == 1
    assert not await consents.is_covered(core, alice.id, alice.uid, "third", ["openid"])
    assert not (await stub.ListConsents(pb.ListConsentsRequest(), metadata=md)).consents


def _identity(conn, namespace: str, name: str):  # type: ignore[no-untyped-def]
    from token_service.store import identities

    return identities.for_grant(conn, identities.login_record(conn, namespace, name).id)


async def _cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = await asyncio.to_thread(main, argv, io.StringIO(""), out)
    return code, out.getvalue()


async def test_cli_redirects_and_consents(oauth_service: OAuthService, admin_stub: Stub) -> None:
    _, md = admin_stub
    base = ["--url", oauth_service.app.grpc_target, "--token", md[0][1].split()[1]]
    code, out = await _cli(
        [*base, "--json", "clients", "create", "cli-web", "--grant", "authorization_code",
         "--redirect-uri", "https://w.example/cb", "--first-party"]
    )  # fmt: skip
    body = json.loads(out)["client"]
    assert code == 0 and body["redirect_uris"] == ["https://w.example/cb"] and body["first_party"] is True
    code, out = await _cli(
        [*base, "clients", "set-redirects", "cli-web", "--redirect-uri", "https://w.example/cb2",
         "--post-logout-redirect-uri", "https://w.example/bye", "--third-party"]
    )  # fmt: skip
    assert (
        code == 0
        and "redirect_uri: https://w.example/cb2" in out
        and "post_logout_redirect_uri: https://w.example/bye" in out
    )
    header, row = out.splitlines()[:2]
    assert row.split()[header.split().index("FIRST_PARTY")] == "no"
    code, out = await _cli([*base, "clients", "consents"])
    assert code == 0 and out.split() == ["NAMESPACE", "IDENTITY", "CLIENT_ID", "SCOPES"]
    code, out = await _cli([*base, "clients", "revoke-consent", "alice", "--client", "cli-web"])
    assert code == 0 and out.strip() == "revoked 0"


async def test_consents_on_both_databases(core) -> None:  # type: ignore[no-untyped-def]
    """The consents table on SQLite and PostgreSQL: union of scopes, incarnation-bound, cascades."""
    await core.clients.create(
        clients.new_client(
            "c1", server_key=b"k", grant_types=["authorization_code"], redirect_uris=["https://c.example/cb"]
        )[0]
    )
    await ensure_identity(core, "ns", "carol", PASSWORD, ["a", "b"])
    carol = await core.store.run_read(_identity, "ns", "carol")
    await consents.grant(core, carol.id, carol.uid, "c1", ["a"])
    await consents.grant(core, carol.id, carol.uid, "c1", ["b"])
    assert [c.scopes for c in await consents.list_consents(core, namespace="ns")] == [("a", "b")]
    await delete_client(core, "c1")  # the consent goes with the client
    assert await consents.list_consents(core) == []
