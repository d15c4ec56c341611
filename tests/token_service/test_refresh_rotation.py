"""Refresh-token rotation in the domain (ClientContext.rotate_refresh_tokens): spend, grace, reuse."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from native_iam.oauth.v1 import feed_pb2
from tests.token_service.conftest import add_client, add_identity
from token_service.core import Core
from token_service.errors import TokenDisabled
from token_service.grants import ClientContext, create_token_with_password, refresh_access_token
from token_service.store.tables import revocations, tokens

ROTATING = ClientContext(client_id="app", rotate_refresh_tokens=True, reuse_grace_s=5)


@pytest.fixture(autouse=True)
async def _app_client(core: Core) -> None:
    """ROTATING's client is registered: a grant needs its client's row (issue 13)."""
    await add_client(core, "app")


async def test_rotation_returns_new_refresh_token_with_same_scopes_and_family(core: Core) -> None:
    """Each refresh spends the presented token and returns a child of the same family and expiry."""
    await add_identity(core, "alice", "pw-123456", ("a:b", "c:d"))
    first = await create_token_with_password(
        core, namespace="", identity="alice", password="pw-123456", scopes=["a:b"], client=ROTATING
    )
    second = await refresh_access_token(core, refresh_token=first.refresh_token or "", client=ROTATING)
    assert second.refresh_token and second.refresh_token != first.refresh_token and second.scopes == ("a:b",)
    async with core.store.read() as conn:
        rows = {r.jti: r for r in (await conn.execute(select(tokens).where(tokens.c.usage == "refresh_token"))).all()}
    parent, child = rows[first.refresh_jti], rows[second.refresh_jti]
    assert parent.spent_at is not None and child.parent_jti == parent.jti
    assert child.family_id == parent.family_id and child.expires_at == parent.expires_at


async def test_reuse_after_grace_revokes_the_family(core: Core) -> None:
    """A spent refresh token presented after the grace window: TOKEN_DISABLED, and every token of the
    family is disabled with REFRESH_TOKEN_REUSE feed events."""
    await add_identity(core, "alice", "pw-123456", ("a:b",))
    first = await create_token_with_password(
        core, namespace="", identity="alice", password="pw-123456", client=ROTATING
    )
    second = await refresh_access_token(core, refresh_token=first.refresh_token or "", client=ROTATING)
    within_grace = await refresh_access_token(core, refresh_token=first.refresh_token or "", client=ROTATING)
    assert within_grace.access_token  # a concurrent retry inside the window still succeeds
    core.clock = lambda: time.time() + 10
    with pytest.raises(TokenDisabled) as info:
        await refresh_access_token(core, refresh_token=first.refresh_token or "", client=ROTATING)
    assert info.value.reason == "refresh_token_reuse"
    with pytest.raises(TokenDisabled):  # every token of the family is dead now
        await refresh_access_token(core, refresh_token=second.refresh_token or "", client=ROTATING)
    async with core.store.read() as conn:
        reasons = (await conn.execute(select(revocations.c.reason))).scalars().all()
    assert reasons and set(reasons) == {feed_pb2.REFRESH_TOKEN_REUSE}
