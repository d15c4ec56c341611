"""Short-lived state on the database (SQLite and PostgreSQL): expiry, single use, atomic claims."""

from __future__ import annotations

import asyncio

import pytest

from token_service import prune
from token_service.core import Core
from token_service.shortlived import MAX_KEY_LENGTH, DatabaseShortLived


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(core: Core, clock: Clock) -> DatabaseShortLived:
    return DatabaseShortLived(core.store, clock)


async def test_a_value_lives_until_its_ttl_ends(state: DatabaseShortLived, clock: Clock) -> None:
    await state.put("code", "k", "v", 60)
    assert await state.get("code", "k") == "v"
    clock.now += 59.9
    assert await state.get("code", "k") == "v"
    clock.now += 0.1
    assert await state.get("code", "k") is None
    assert await state.take("code", "k") is None


async def test_kinds_keep_uses_apart(state: DatabaseShortLived) -> None:
    await state.put("code", "k", "a code", 60)
    await state.put("session", "k", "a session", 60)
    assert await state.take("code", "k") == "a code"
    assert await state.get("session", "k") == "a session"


async def test_put_replaces_and_delete_forgets(state: DatabaseShortLived) -> None:
    await state.put("session", "k", "one", 60)
    await state.put("session", "k", "two", 60)
    assert await state.get("session", "k") == "two"
    await state.delete("session", "k")
    assert await state.get("session", "k") is None
    await state.delete("session", "k")  # forgetting nothing is fine


async def test_take_redeems_once(state: DatabaseShortLived) -> None:
    await state.put("code", "c", "grant", 60)
    assert await state.take("code", "c") == "grant"
    assert await state.take("code", "c") is None


async def test_add_claims_once_until_the_claim_expires(state: DatabaseShortLived, clock: Clock) -> None:
    assert await state.add("jti", "j", "1", 30) is True
    assert await state.add("jti", "j", "2", 30) is False
    assert await state.get("jti", "j") == "1"
    clock.now += 30
    assert await state.add("jti", "j", "3", 30) is True  # an expired claim no longer blocks
    assert await state.get("jti", "j") == "3"


async def test_concurrent_claims_and_takes_have_one_winner(state: DatabaseShortLived) -> None:
    claims = await asyncio.gather(*(state.add("jti", "race", str(i), 30) for i in range(20)))
    assert claims.count(True) == 1
    await state.put("code", "race", "grant", 60)
    takes = await asyncio.gather(*(state.take("code", "race") for _ in range(20)))
    assert takes.count("grant") == 1 and takes.count(None) == 19


async def test_keys_and_kinds_are_bounded(state: DatabaseShortLived) -> None:
    with pytest.raises(ValueError):
        await state.put("code", "k" * (MAX_KEY_LENGTH + 1), "v", 60)
    with pytest.raises(ValueError):
        await state.put("", "k", "v", 60)
    await state.put("code", "k" * MAX_KEY_LENGTH, "v", 60)
    assert await state.get("code", "k" * MAX_KEY_LENGTH) == "v"


async def test_pruning_deletes_only_expired_values(core: Core, state: DatabaseShortLived, clock: Clock) -> None:
    await state.put("code", "old", "v", 10)
    await state.put("code", "new", "v", 1000)
    pruned = await prune.Pruner(core.settings, core.store).prune(clock.now + 100)
    assert pruned.short_lived == 1
    assert await state.get("code", "new") == "v"


async def test_the_core_has_database_short_lived_state_by_default(core: Core) -> None:
    await core.short_lived.put("nonce", "n", "v", 60)
    assert await core.short_lived.take("nonce", "n") == "v"
