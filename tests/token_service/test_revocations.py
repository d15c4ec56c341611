"""token_service.revocations, the one writer of "dead" state: each change comes with its event."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from native_iam.oauth.v1 import feed_pb2
from tests.token_service.conftest import add_identity
from token_service import revocations
from token_service.admin import service as admin
from token_service.core import Core
from token_service.grants import create_token_with_password
from token_service.store.tables import revocations as events_table
from token_service.store.tables import tokens


def test_an_empty_token_match_is_refused() -> None:
    """A TokenMatch with no field would disable every token: refused before any SQL."""
    with pytest.raises(ValueError, match="at least one"):
        revocations.TokenMatch().condition()


async def test_disable_tokens_writes_state_and_one_event_per_token(core: Core) -> None:
    """Only the matching live token is disabled, with one TOKEN event carrying its own expiry."""
    await add_identity(core, "alice", policy=("read",))
    issued = await create_token_with_password(core, namespace="", identity="alice", password="s3cret-pass")
    other = await create_token_with_password(core, namespace="", identity="alice", password="s3cret-pass")
    match = revocations.TokenMatch(jti=issued.access_jti)
    async with core.store.write() as conn:
        assert await conn.run_sync(revocations.disable_tokens, match, feed_pb2.CLIENT_REVOKED, core.clock()) == 1
    async with core.store.write() as conn:  # already disabled: nothing more to say
        assert await conn.run_sync(revocations.disable_tokens, match, feed_pb2.CLIENT_REVOKED, core.clock()) == 0
    async with core.store.read() as conn:
        states = dict((await conn.execute(select(tokens.c.jti, tokens.c.state))).all())
        expiry = (await conn.execute(select(tokens.c.expires_at).where(tokens.c.jti == issued.access_jti))).scalar()
        events = (await conn.execute(select(events_table).where(events_table.c.jti != ""))).all()
    assert states[issued.access_jti] == "disabled" and states[other.access_jti] == "active"
    assert [(e.jti, e.reason, e.expires_unix) for e in events] == [(issued.access_jti, feed_pb2.CLIENT_REVOKED, expiry)]


async def test_identity_cutoffs_expire_by_the_one_rule(core: Core) -> None:
    """Disable, policy cut and delete events of an identity expire at cut-off + max token TTL."""
    await add_identity(core, "bob", policy=("read", "write"))
    await admin.set_identity_active(core, "", "bob", False)
    await admin.set_policy(core, "", "bob", ["read"])
    await admin.delete_identity(core, "", "bob")
    async with core.store.read() as conn:
        events = (await conn.execute(select(events_table).where(events_table.c.identity == "bob"))).all()
    expected = [feed_pb2.IDENTITY_DISABLED, feed_pb2.POLICY_CHANGED, feed_pb2.IDENTITY_DELETED]
    assert [e.reason for e in events] == expected
    ttl = core.settings.max_token_ttl_s
    assert all(e.expires_unix == revocations.expires(e.cutoff_unix, ttl) for e in events)
