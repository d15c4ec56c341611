"""Pruning (token_service/prune.py): stale lockout counters and long-expired tokens go, nothing else."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from token_service import prune
from token_service.app import TokenServiceApp
from token_service.core import Core
from token_service.lockout import address_key, identity_key
from token_service.store.tables import lockouts, revocations, tokens
from token_service.testing import settings_for_tests

NOW = 2_000_000_000.0
DAY = 86400


def _token(jti: str, expires_at: float) -> dict[str, object]:
    return {
        "jti": jti,
        "usage": "access_token",
        "identity_id": 1,
        "namespace": "",
        "identity": "alice",
        "client_id": "native-iam",
        "scopes": "a:b",
        "kid": "k1",
        "created_at": int(expires_at) - 3600,
        "expires_at": int(expires_at),
    }


async def _seed(core: Core) -> None:
    reset, retention = core.settings.lockout_reset_s, core.settings.feed_retention_s
    counters = {
        "quiet": (NOW - reset - 1, 0.0),  # forgotten at the next failure anyway: goes
        "quiet-lock-over": (NOW - reset - 1, NOW - 1),  # goes
        "recent": (NOW - reset + 60, 0.0),  # still counting: stays
        "still-locked": (NOW - reset - 1, NOW + 60),  # locked past the reset (long max_s): stays
        "in-flight": (NOW - reset - 1, 0.0),  # quiet, but an attempt holds a slot: stays
        "dead-slot": (NOW - reset - 1, 0.0),  # its slot's process died long ago: goes
    }
    slots = {"in-flight": (1, NOW + 30), "dead-slot": (1, NOW - 30)}
    async with core.store.write() as conn:
        for name, (last_failure_at, locked_until) in counters.items():
            pending, pending_until = slots.get(name, (0, 0.0))
            values = {
                "failures": 3,
                "last_failure_at": last_failure_at,
                "locked_until": locked_until,
                "pending": pending,
                "pending_until": pending_until,
            }
            await conn.execute(lockouts.insert().values(key=identity_key("", name), **values))
        await conn.execute(
            tokens.insert(),
            [
                _token("long-expired", NOW - retention - 1),  # goes
                _token("recently-expired", NOW - retention + DAY),  # stays (listings, audits)
                _token("alive", NOW + 3600),  # stays
            ],
        )
        # A revocation event about the doomed token: the feed owns it (and compacts it itself).
        await conn.execute(
            revocations.insert().values(
                sequence=1,
                target=1,
                reason=1,
                jti="long-expired",
                expires_unix=int(NOW - retention - 1),
                created_at=NOW,
            )
        )


async def test_prune_deletes_exactly_the_stale_rows(core: Core) -> None:
    await _seed(core)
    assert await prune.Pruner(core.settings, core.store).prune(NOW) == prune.Pruned(lockouts=3, tokens=1)
    async with core.store.read() as conn:
        keys = set((await conn.execute(select(lockouts.c.key))).scalars())
        jtis = set((await conn.execute(select(tokens.c.jti))).scalars())
        events = (await conn.execute(select(func.count()).select_from(revocations))).scalar_one()
    assert keys == {identity_key("", name) for name in ("recent", "still-locked", "in-flight")}
    assert jtis == {"recently-expired", "alive"}
    assert events == 1
    assert await prune.Pruner(core.settings, core.store).prune(NOW) == prune.Pruned(lockouts=0, tokens=0)  # idempotent


async def test_prune_works_in_batches(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    """More rows than one batch: every one goes, one short transaction per batch."""
    monkeypatch.setattr(prune, "BATCH", 7)
    async with core.store.write() as conn:
        stale = {"failures": 1, "last_failure_at": 0.0, "locked_until": 0.0}
        rows = [{"key": address_key(f"198.51.100.{i}"), **stale} for i in range(21)]
        await conn.execute(lockouts.insert(), rows)
    assert (await prune.Pruner(core.settings, core.store).prune(NOW)).lockouts == 21


async def test_the_service_prunes_every_interval(tmp_path: Path) -> None:
    """NATIVE_IAM_PRUNE_INTERVAL_S: the running service deletes a stale counter by itself."""
    app = TokenServiceApp(settings_for_tests(f"sqlite:///{tmp_path / 'prune.db'}", prune_interval_s=0.05))
    await app.start()
    try:
        async with app.core.store.write() as conn:
            await conn.execute(
                lockouts.insert().values(
                    key=address_key("192.0.2.1"), failures=9, last_failure_at=0.0, locked_until=0.0
                )
            )
        deadline = time.monotonic() + 10
        while True:
            async with app.core.store.read() as conn:
                left = (await conn.execute(select(func.count()).select_from(lockouts))).scalar_one()
            if left == 0:
                break
            assert time.monotonic() < deadline, "the stale counter was never pruned"
            await asyncio.sleep(0.05)
    finally:
        await app.stop(0)
