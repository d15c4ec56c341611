"""CheckAccess cache invalidation across replicas through Redis pub/sub (SYSTEM_CACHE_URL):
a revocation written through one replica voids the other's cache within milliseconds, long
before its feed tail's next poll; a lost subscription comes back by itself."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.token_service.conftest import add_identity
from token_service.access import check_access
from token_service.admin import service as admin
from token_service.app import TokenServiceApp
from token_service.errors import GrantError
from token_service.grants import create_token_with_password
from token_service.testing import running_token_service

#: A slow poll (B's tail reads every 30 s; SQLite has no NOTIFY): only pub/sub can void replica
#: B's cache within the tests' bound.
SLOW_POLL = {"feed_poll_s": 30.0}


async def _refused(app: TokenServiceApp, token: str) -> bool:
    try:
        await check_access(app.core, access_token=token)
    except GrantError:
        return True
    return False


async def _cached_token(a: TokenServiceApp, b: TokenServiceApp, name: str) -> str:
    await add_identity(a.core, name, policy=("orders:read",))
    issued = await create_token_with_password(a.core, namespace="", identity=name, password="s3cret-pass")
    assert not await _refused(b, issued.access_token)
    assert b.core.checks.get(issued.access_token) is not None  # B answers it from its cache now
    return issued.access_token


async def _voided_within(b: TokenServiceApp, token: str, bound_s: float) -> float:
    """Seconds until B's cache stops answering ``token`` (fails past ``bound_s``)."""
    started = time.monotonic()
    while b.core.checks.get(token) is not None:
        assert time.monotonic() - started < bound_s, f"B's cache still answered {bound_s} s after the revocation"
        await asyncio.sleep(0.001)
    return time.monotonic() - started


async def _subscribed(*apps: TokenServiceApp) -> None:
    for app in apps:
        assert app.invalidation is not None
        await asyncio.wait_for(app.invalidation.subscribed.wait(), 10)


async def test_a_revocation_through_one_replica_voids_the_others_cache(tmp_path: Path, redis_url: str) -> None:
    """Replica A disables alice; replica B refuses her token, cached a moment ago, within 1 s
    (measured: a few ms), though its feed tail would not read the event for 30 s."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with (
        running_token_service(url, cache_url=redis_url, **SLOW_POLL) as a,
        running_token_service(url, cache_url=redis_url, **SLOW_POLL) as b,
    ):
        await _subscribed(a, b)
        token = await _cached_token(a, b, "alice")
        await admin.set_identity_active(a.core, "", "alice", False)
        await _voided_within(b, token, 1.0)
        assert await _refused(b, token)


async def test_a_lost_subscription_comes_back_by_itself(tmp_path: Path, redis_server: Any, redis_url: str) -> None:
    """Redis killed: the subscription is lost (the feed poll and the staleness bound still hold),
    grants and checks that need no Redis go on; Redis back: both replicas subscribe again without
    a restart, and the next revocation voids B's cache at once."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with (
        running_token_service(url, cache_url=redis_url, **SLOW_POLL) as a,
        running_token_service(url, cache_url=redis_url, **SLOW_POLL) as b,
    ):
        await _subscribed(a, b)
        redis_server.kill()
        for app in (a, b):
            assert app.invalidation is not None
            for _ in range(200):
                if not app.invalidation.subscribed.is_set():
                    break
                await asyncio.sleep(0.05)
            assert not app.invalidation.subscribed.is_set()
        redis_server.start()
        await _subscribed(a, b)
        token = await _cached_token(a, b, "bob")
        await admin.set_identity_active(a.core, "", "bob", False)
        await _voided_within(b, token, 1.0)
