"""Housekeeping: delete rows that can no longer decide anything, so the tables stop growing.

* ``lockouts``: counters that are not locked, hold no attempt in flight and whose last failure
  is older than ``NATIVE_IAM_LOCKOUT_RESET_S`` — the next failure would start from 1 anyway, so
  the row is equivalent to no row (:meth:`token_service.lockout.Lockout.reserve_sync`).
* ``tokens``: tokens expired for longer than ``NATIVE_IAM_FEED_RETENTION_S``. An expired token
  is refused by its ``exp`` before any row is read (no leeway), so its row only serves listings
  and audits; the feed's revocation events carry their own copy of what they need (jti, expiry)
  and are compacted by the feed on the same retention, so nothing refers to a deleted row.
* ``short_lived``: values past their time-to-live (every read already ignores them).

Every replica runs :class:`Pruner` every ``NATIVE_IAM_PRUNE_INTERVAL_S``: the deletes are
idempotent, and run in batches (one short transaction each) so grants never wait long behind them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from token_service.settings import Settings
from token_service.store import Store, lockouts, shortlived, tokens

__all__ = ["Pruned", "Pruner"]

log = logging.getLogger(__name__)

#: Rows deleted per transaction.
BATCH = 1000


@dataclass(frozen=True, slots=True)
class Pruned:
    lockouts: int
    tokens: int
    short_lived: int = 0


class Pruner:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    async def prune(self, now: float | None = None) -> Pruned:
        """Delete what can go now (see the module's docstring); how many rows of each."""
        now = time.time() if now is None else now
        quiet_since = now - self.settings.lockout_reset_s
        long_expired = int(now) - self.settings.feed_retention_s
        return Pruned(
            lockouts=await self._delete(lambda conn: lockouts.delete_stale_batch(conn, now, quiet_since, BATCH)),
            tokens=await self._delete(lambda conn: tokens.delete_expired_batch(conn, long_expired, BATCH)),
            short_lived=await self._delete(lambda conn: shortlived.delete_expired_batch(conn, now, BATCH)),
        )

    async def _delete(self, batch: Callable[[Connection], int]) -> int:
        """Run ``batch`` (one transaction each) until it deletes fewer than BATCH rows; the total."""
        total = 0
        while True:
            deleted = await self.store.run_write(batch)
            total += deleted
            if deleted < BATCH:
                return total

    async def run(self) -> None:
        """Prune every ``NATIVE_IAM_PRUNE_INTERVAL_S`` until cancelled; a failure waits for the next turn."""
        while True:
            await asyncio.sleep(self.settings.prune_interval_s)
            try:
                pruned = await self.prune()
            except Exception:
                log.warning("pruning failed", exc_info=True)
                continue
            if pruned.lockouts or pruned.tokens or pruned.short_lived:
                log.info(
                    "pruned",
                    extra={"lockouts": pruned.lockouts, "tokens": pruned.tokens, "short_lived": pruned.short_lived},
                )
