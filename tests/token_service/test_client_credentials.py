"""The client_credentials grant and OAuth client revocation in the domain (issue 13), on SQLite and
PostgreSQL: scopes from the client's policy, CheckAccess before and after disable/enable/delete,
a re-created client id, and a client named like an identity."""

from __future__ import annotations

import asyncio

import jwt
import pytest
from sqlalchemy import select

from native_iam.oauth.v1 import feed_pb2
from tests.token_service.conftest import add_client, add_identity
from token_service.access import check_access
from token_service.admin.clients import delete_client, set_client_enabled, set_client_scopes
from token_service.admin.service import list_tokens, set_identity_active
from token_service.core import Core
from token_service.errors import (
    InvalidClient,
    NotFound,
    ScopeNotGranted,
    TokenDisabled,
    TokenInvalid,
    TokenNotFound,
)
from token_service.grants import (
    ClientContext,
    IssuedTokens,
    client_context,
    client_credentials_grant,
    create_token_with_password,
    exchange_token,
    refresh_access_token,
)
from token_service.grants.token_exchange import ACCESS_TOKEN_TYPE
from token_service.store.tables import revocations, tokens

GRANTS = ("client_credentials", "password", "refresh_token")
PASSWORD = "pw-123456"


async def _svc(
    core: Core, client_id: str = "svc", scopes: tuple[str, ...] = ("orders:read", "inventory:*")
) -> ClientContext:
    client, _ = await add_client(core, client_id, grant_types=GRANTS, scopes=scopes, audiences=("orders",))
    return client_context(client, 5.0)


async def _grant(core: Core, client_id: str = "svc", scopes: tuple[str, ...] | None = None) -> IssuedTokens:
    registered = await core.clients.get(client_id)
    return await client_credentials_grant(core, client=client_context(registered, 5.0), scopes=scopes)


async def _events(core: Core) -> list[tuple[int, int, str, int, bool]]:
    async with core.store.read() as conn:
        rows = (await conn.execute(select(revocations).order_by(revocations.c.sequence))).all()
    return [(r.target, r.reason, r.client_id, r.cutoff_unix, bool(r.lifted)) for r in rows]


async def test_token_names_the_client_with_its_policy_scopes_and_no_refresh_token(core: Core) -> None:
    """RFC 9068: sub = client_id, sub_kind client, aud = the client's audiences, no namespace; no
    scope asked → the policy's concrete scopes; no refresh token; the row has no identity."""
    await _svc(core)
    issued = await _grant(core)
    assert issued.refresh_token is None and issued.scopes == ("orders:read",)
    body = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert (body["sub"], body["client_id"], body["sub_kind"], body["aud"]) == ("svc", "svc", "client", "orders")
    assert "namespace" not in body and body["scope"] == "orders:read"
    async with core.store.read() as conn:
        row = (await conn.execute(select(tokens).where(tokens.c.jti == issued.access_jti))).one()
    assert (row.identity_id, row.identity, row.namespace, row.client_id) == (None, "", "", "svc")
    granted = await check_access(core, access_token=issued.access_token, scopes=["orders:read"])
    assert granted.claims.is_client and granted.claims.identity == ""


async def test_scopes_are_checked_against_the_client_policy(core: Core) -> None:
    """Within the policy (wildcards too) → granted; outside → ScopeNotGranted; openid → refused."""
    await _svc(core)
    assert (await _grant(core, scopes=("inventory:write", "orders:read"))).scopes == ("inventory:write", "orders:read")
    for outside in (("orders:write",), ("inventory",), ("openid",)):
        with pytest.raises(ScopeNotGranted):
            await _grant(core, scopes=outside)


async def test_policy_change_applies_to_the_next_grant(core: Core) -> None:
    """SetClientScopes: the next grant is checked against the new policy."""
    await _svc(core)
    await set_client_scopes(core, "svc", ["orders:write"])
    assert (await _grant(core)).scopes == ("orders:write",)
    with pytest.raises(ScopeNotGranted):
        await _grant(core, scopes=("orders:read",))
    with pytest.raises(NotFound):
        await set_client_scopes(core, "nobody", [])


async def test_disable_refuses_the_grant_and_revokes_through_the_feed_and_enable_lifts(core: Core) -> None:
    """Disable: CheckAccess TOKEN_DISABLED, the grant InvalidClient, one CLIENT_DISABLED event with a
    cut-off; enable: the same token passes again, and the event is lifted."""
    await _svc(core)
    issued = await _grant(core)
    await set_client_enabled(core, "svc", False)
    with pytest.raises(TokenDisabled):
        await check_access(core, access_token=issued.access_token)
    with pytest.raises(InvalidClient):
        await _grant(core)
    await set_client_enabled(core, "svc", False)  # idempotent: no second event
    await set_client_enabled(core, "svc", True)
    await check_access(core, access_token=issued.access_token)
    events = await _events(core)
    assert [(t, r, c, lifted) for t, r, c, _, lifted in events] == [
        (feed_pb2.CLIENT, feed_pb2.CLIENT_DISABLED, "svc", False),
        (feed_pb2.CLIENT, feed_pb2.CLIENT_DISABLED, "svc", True),
    ]
    assert events[0][3] >= issued_iat(issued.access_token)


def issued_iat(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False})["iat"])


async def test_identity_tokens_obtained_through_the_client_die_with_it(core: Core) -> None:
    """A CLIENT revocation covers every token whose client_id is the client, an identity's too."""
    svc = await _svc(core)
    await add_identity(core, "alice", PASSWORD, ("orders:read",))
    alice = await create_token_with_password(core, namespace="", identity="alice", password=PASSWORD, client=svc)
    await set_client_enabled(core, "svc", False)
    with pytest.raises(TokenDisabled):
        await check_access(core, access_token=alice.access_token)
    await delete_client(core, "svc")
    with pytest.raises(TokenNotFound):
        await check_access(core, access_token=alice.access_token)


async def test_deleted_then_recreated_client_id_never_revives_old_tokens(core: Core) -> None:
    """Delete then register the same id at once: the old access and refresh tokens stay dead (the
    registration waits past the deletion's second), the new client's tokens pass."""
    svc = await _svc(core)
    await add_identity(core, "alice", PASSWORD, ("orders:read",))
    old = await _grant(core)
    alice = await create_token_with_password(core, namespace="", identity="alice", password=PASSWORD, client=svc)
    await delete_client(core, "svc")
    assert (await _events(core))[-1][:3] == (feed_pb2.CLIENT, feed_pb2.CLIENT_DELETED, "svc")
    with pytest.raises(TokenNotFound):
        await check_access(core, access_token=old.access_token)
    again = await _svc(core)
    for token in (old.access_token, alice.access_token):
        with pytest.raises(TokenNotFound):
            await check_access(core, access_token=token)
    with pytest.raises(TokenInvalid):
        await refresh_access_token(core, refresh_token=alice.refresh_token or "", client=again)
    await check_access(core, access_token=(await _grant(core)).access_token)
    with pytest.raises(NotFound):
        await delete_client(core, "nobody")


async def test_client_named_like_an_identity_never_crosses_over(core: Core) -> None:
    """Identity "svc" and client "svc": disabling the identity leaves the client's token alone,
    disabling the client leaves the identity's token (obtained through another client) alone."""
    await _svc(core)
    web = await _svc(core, "web")
    await add_identity(core, "svc", PASSWORD, ("orders:read",))
    person = await create_token_with_password(core, namespace="", identity="svc", password=PASSWORD, client=web)
    machine = await _grant(core)
    await set_identity_active(core, "", "svc", False)
    await check_access(core, access_token=machine.access_token)
    with pytest.raises(TokenDisabled):
        await check_access(core, access_token=person.access_token)
    await set_identity_active(core, "", "svc", True)
    await set_client_enabled(core, "svc", False)
    assert (await check_access(core, access_token=person.access_token)).claims.identity == "svc"
    with pytest.raises(TokenDisabled):
        await check_access(core, access_token=machine.access_token)


async def test_client_tokens_are_listed_by_the_admin_api(core: Core) -> None:
    """Tokens.ListTokens shows a client's own token with its client and no identity."""
    await _svc(core)
    issued = await _grant(core)
    listed, _ = await list_tokens(core)
    mine = [t for t in listed if t.jti == issued.access_jti]
    assert [(t.identity, t.namespace, t.client_id, t.scopes) for t in mine] == [("", "", "svc", ("orders:read",))]


async def test_no_token_escapes_a_concurrent_disable(core: Core) -> None:
    """Grants racing a disable: each grant either is refused (InvalidClient) or issued a token whose
    iat the disable's cut-off covers — the client's row lock orders them (PostgreSQL) or the single
    writer does (SQLite) — so a sidecar, which only has the cut-off, refuses every one."""
    await _svc(core)
    registered = client_context(await core.clients.get("svc"), 5.0)

    async def grant() -> IssuedTokens | None:
        try:
            return await client_credentials_grant(core, client=registered)
        except InvalidClient:
            return None

    grants = [asyncio.create_task(grant()) for _ in range(30)]
    await asyncio.sleep(0.01)
    await set_client_enabled(core, "svc", False)
    issued = [i for i in await asyncio.gather(*grants) if i is not None]
    assert issued  # the race had tokens on its issued side, or it proved nothing
    cutoff = (await _events(core))[-1][3]
    assert all(issued_iat(i.access_token) <= cutoff for i in issued)
    with pytest.raises(InvalidClient):
        await client_credentials_grant(core, client=registered)


async def test_exchanged_tokens_die_with_the_exchanging_client(core: Core) -> None:
    """RFC 8693: the exchanged token's client_id is the exchanging client, so disabling that client
    revokes it (the user's own token stays); a disabled client cannot exchange; a client's own
    token is no subject token (it names no user)."""
    exchange = "urn:ietf:params:oauth:grant-type:token-exchange"
    web = await _svc(core, "web")
    checkout, _ = await add_client(core, "checkout", grant_types=(exchange,), exchange_audiences=("orders",))
    await add_identity(core, "alice", PASSWORD, ("orders:read",))
    alice = await create_token_with_password(core, namespace="", identity="alice", password=PASSWORD, client=web)

    async def exchanged(subject: str) -> IssuedTokens:
        return await exchange_token(
            core, client=await core.clients.get("checkout"), subject_token=subject, subject_token_type=ACCESS_TOKEN_TYPE
        )

    token = (await exchanged(alice.access_token)).access_token
    await check_access(core, access_token=token)
    await set_client_enabled(core, checkout.client_id, False)
    with pytest.raises(TokenDisabled):
        await check_access(core, access_token=token)
    await check_access(core, access_token=alice.access_token)
    with pytest.raises(InvalidClient):
        await exchanged(alice.access_token)
    await set_client_enabled(core, checkout.client_id, True)
    with pytest.raises(TokenInvalid):
        await exchanged((await _grant(core, "web")).access_token)
