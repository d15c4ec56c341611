"""Short-lived state, one contract for every implementation — the database (SQLite and
PostgreSQL) and Redis (SYSTEM_CACHE_URL): expiry, single use, atomic claims."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis

from token_service import prune
from token_service.cache import Cache
from token_service.cache.shortlived import PREFIX, RedisShortLived
from token_service.core import Core
from token_service.errors import Unavailable
from token_service.shortlived import MAX_KEY_LENGTH, DatabaseShortLived, ShortLived
from token_service.testing import settings_for_tests

#: Redis's TTLs run on its own clock: moving it forward means shortening every TTL by as much
#: (and deleting the keys whose TTL would end).
_TIME_TRAVEL = """
for _, name in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do
  local ttl = redis.call('PTTL', name)
  if ttl >= 0 then
    if ttl <= tonumber(ARGV[2]) then redis.call('DEL', name) else redis.call('PEXPIRE', name, ttl - ARGV[2]) end
  end
end
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.redis_url: str | None = None

    def __call__(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        if self.redis_url is not None:
            async with redis.Redis.from_url(self.redis_url) as client:
                await client.eval(_TIME_TRAVEL, 0, PREFIX, int(seconds * 1000))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["database", "redis"])
async def state(request: pytest.FixtureRequest, core: Core, clock: Clock) -> AsyncIterator[ShortLived]:
    """Each implementation (the Redis one once, on SQLite: it never touches the database)."""
    if request.param == "database":
        yield DatabaseShortLived(core.store, clock)
        return
    if core.store.dialect != "sqlite":
        pytest.skip("Redis does not depend on the database")
    clock.redis_url = request.getfixturevalue("redis_url")
    cache = Cache(settings_for_tests(core.settings.db_url, cache_url=clock.redis_url))
    yield RedisShortLived(cache)
    await cache.close()


async def test_a_value_lives_until_its_ttl_ends(state: ShortLived, clock: Clock) -> None:
    await state.put("code", "k", "v", 60)
    assert await state.get("code", "k") == "v"
    await clock.advance(59.9)
    assert await state.get("code", "k") == "v"
    await clock.advance(0.1)
    assert await state.get("code", "k") is None
    assert await state.take("code", "k") is None


async def test_kinds_keep_uses_apart(state: ShortLived) -> None:
    await state.put("code", "k", "a code", 60)
    await state.put("session", "k", "a session", 60)
    assert await state.take("code", "k") == "a code"
    assert await state.get("session", "k") == "a session"


async def test_put_replaces_and_delete_forgets(state: ShortLived) -> None:
    await state.put("session", "k", "one", 60)
    await state.put("session", "k", "two", 60)
    assert await state.get("session", "k") == "two"
    await state.delete("session", "k")
    assert await state.get("session", "k") is None
    await state.delete("session", "k")  # forgetting nothing is fine


async def test_take_redeems_once(state: ShortLived) -> None:
    await state.put("code", "c", "grant", 60)
    assert await state.take("code", "c") == "grant"
    assert await state.take("code", "c") is None


async def test_add_claims_once_until_the_claim_expires(state: ShortLived, clock: Clock) -> None:
    assert await state.add("jti", "j", "1", 30) is True
    assert await state.add("jti", "j", "2", 30) is False
    assert await state.get("jti", "j") == "1"
    await clock.advance(30)
    assert await state.add("jti", "j", "3", 30) is True  # an expired claim no longer blocks
    assert await state.get("jti", "j") == "3"


async def test_concurrent_claims_and_takes_have_one_winner(state: ShortLived) -> None:
    claims = await asyncio.gather(*(state.add("jti", "race", str(i), 30) for i in range(20)))
    assert claims.count(True) == 1
    await state.put("code", "race", "grant", 60)
    takes = await asyncio.gather(*(state.take("code", "race") for _ in range(20)))
    assert takes.count("grant") == 1 and takes.count(None) == 19


async def test_keys_and_kinds_are_bounded(state: ShortLived) -> None:
    with pytest.raises(ValueError):
        await state.put("code", "k" * (MAX_KEY_LENGTH + 1), "v", 60)
    with pytest.raises(ValueError):
        await state.put("", "k", "v", 60)
    await state.put("code", "k" * MAX_KEY_LENGTH, "v", 60)
    assert await state.get("code", "k" * MAX_KEY_LENGTH) == "v"
    for ttl in (0, -1, float("nan")):
        with pytest.raises(ValueError):
            await state.put("code", "t", "v", ttl)
        with pytest.raises(ValueError):
            await state.add("jti", "t", "v", ttl)


async def test_pruning_deletes_only_expired_values(core: Core, clock: Clock) -> None:
    state = DatabaseShortLived(core.store, clock)  # Redis needs no pruning: its keys expire
    await state.put("code", "old", "v", 10)
    await state.put("code", "new", "v", 1000)
    pruned = await prune.Pruner(core.settings, core.store).prune(clock.now + 100)
    assert pruned.short_lived == 1
    assert await state.get("code", "new") == "v"


async def test_the_core_has_database_short_lived_state_by_default(core: Core) -> None:
    await core.short_lived.put("nonce", "n", "v", 60)
    assert await core.short_lived.take("nonce", "n") == "v"


async def test_the_core_keeps_short_lived_state_in_redis_when_configured(sqlite_url: str, redis_url: str) -> None:
    core = Core.build(settings_for_tests(sqlite_url, cache_url=redis_url))
    try:
        assert isinstance(core.short_lived, RedisShortLived)
        await core.short_lived.put("nonce", "n", "v", 60)
        async with redis.Redis.from_url(redis_url) as client:
            assert await client.pttl(f"{PREFIX}5:nonce:n") > 59_000  # a native TTL: nothing to prune
        assert await core.short_lived.take("nonce", "n") == "v"
    finally:
        await core.close()


async def test_redis_down_is_unavailable_then_recovers_by_itself(sqlite_url: str, redis_server: Any) -> None:
    """Redis killed: every call fails fast with Unavailable (503 / UNAVAILABLE at the edges, never
    a 500 or a hang); started again: the same client works without a restart."""
    redis_server.flush()
    cache = Cache(settings_for_tests(sqlite_url, cache_url=redis_server.url, cache_command_timeout_s=0.3))
    state = RedisShortLived(cache)
    try:
        await state.put("code", "c", "v", 60)
        redis_server.kill()
        started = time.monotonic()
        with pytest.raises(Unavailable) as refused:
            await state.add("jti", "j", "1", 60)
        assert time.monotonic() - started < 5
        assert refused.value.dependency == "cache" and "short-lived" in refused.value.message
        redis_server.start()
        assert await state.add("jti", "j", "1", 60) is True
    finally:
        if redis_server.process is None:
            redis_server.start()
        await cache.close()
