"""Brute-force protection: exponential back-off, then lockout, per identity and per address.

After ``free_attempts`` consecutive failures for a key, every further failure locks the key for
``base_s * 2**(n - free_attempts)`` seconds, capped at ``max_s`` (the lockout). A quiet period of
``reset_s`` forgets the failures; a successful login clears the identity's counter. The counters
live in the database so every replica sees them. A locked attempt is answered exactly like a
wrong password (CREDENTIALS_INVALID, after a dummy hash), so lockout reveals nothing about
whether the identity exists.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from token_service.settings import Settings
from token_service.store import Store
from token_service.store.tables import lockouts

__all__ = ["Lockout", "address_key", "identity_key"]


def identity_key(namespace: str, identity: str) -> str:
    return f"identity:{namespace}/{identity}"


def address_key(address: str) -> str:
    return f"address:{address}"


class Lockout:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.enabled = settings.lockout_enabled
        self.free_attempts = settings.lockout_free_attempts
        self.base_s = settings.lockout_base_s
        self.max_s = settings.lockout_max_s
        self.reset_s = settings.lockout_reset_s
        self.store = store

    def keys(self, namespace: str, identity: str, address: str | None) -> list[str]:
        keys = [identity_key(namespace, identity)]
        if address:
            keys.append(address_key(address))
        return keys

    async def locked(self, keys: Sequence[str], now: float | None = None) -> str | None:
        """The first key that is locked now, or ``None``."""
        if not self.enabled:
            return None
        return await self.store.run_read(self.locked_sync, keys, time.time() if now is None else now)

    def locked_sync(self, conn: Connection, keys: Sequence[str], now: float) -> str | None:
        if not self.enabled:
            return None
        rows = conn.execute(select(lockouts.c.key).where(lockouts.c.key.in_(keys), lockouts.c.locked_until > now))
        return rows.scalars().first()

    def backoff_s(self, failures: int) -> float:
        if failures < self.free_attempts:
            return 0.0
        return min(self.max_s, self.base_s * 2 ** min(failures - self.free_attempts, 62))

    async def record_failure(self, keys: Sequence[str], now: float | None = None) -> None:
        if self.enabled:
            await self.store.run_write(self._record_failure, keys, time.time() if now is None else now)

    def _record_failure(self, conn: Connection, keys: Sequence[str], now: float) -> None:
        existing = {row.key: row for row in conn.execute(select(lockouts).where(lockouts.c.key.in_(keys)))}
        for key in keys:
            row = existing.get(key)
            failures = 1 if row is None or now - row.last_failure_at > self.reset_s else row.failures + 1
            values = {"failures": failures, "last_failure_at": now, "locked_until": now + self.backoff_s(failures)}
            if row is None:
                conn.execute(lockouts.insert().values(key=key, **values))
            else:
                conn.execute(update(lockouts).where(lockouts.c.key == key).values(**values))

    def clear_sync(self, conn: Connection, key: str) -> None:
        """Forget the failures of ``key`` (after a successful login), inside the grant's transaction."""
        if self.enabled:
            conn.execute(delete(lockouts).where(lockouts.c.key == key))
