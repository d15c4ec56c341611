"""Brute-force protection: exponential back-off, then lockout, per identity and per address.

After ``free_attempts`` consecutive failures for a key, every further failure locks the key for
``base_s * 2**(n - free_attempts)`` seconds, capped at ``max_s`` (the lockout). A quiet period of
``reset_s`` forgets the failures; a successful login clears the identity's counter. The counters
live in the database so every replica sees them. A locked attempt is answered exactly like a
wrong password (CREDENTIALS_INVALID, after a dummy hash), so lockout reveals nothing about
whether the identity exists.

Every attempt is counted as a failure *before* its password is verified (:meth:`Lockout.reserve_sync`,
one write transaction holding each counter's row lock), and a success gives its count back
(:meth:`Lockout.release_sync`). Checking first and counting after the verification would let N
concurrent guesses all pass the check; reserving first means at most ``free_attempts`` of any
number of concurrent attempts, on any replica, ever reach a real verification.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import ReturningInsert

from token_service.settings import Settings
from token_service.store import Store
from token_service.store.tables import lockouts

__all__ = ["Attempt", "Lockout", "address_key", "identity_key"]

IDENTITY_PREFIX = "identity:"
ADDRESS_PREFIX = "address:"


def identity_key(namespace: str, identity: str) -> str:
    """The counter key of an identity. The namespace is length-prefixed, so no pair of
    (namespace, name) shares a key with another whatever either contains ('/', ':', digits)."""
    return f"{IDENTITY_PREFIX}{len(namespace)}:{namespace}/{identity}"


def address_key(address: str) -> str:
    """The counter key of a client address. An IPv6 client counts by its /64: one subscriber is
    usually given a whole /64 and could otherwise start a fresh counter with every address."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"{ADDRESS_PREFIX}{address}"
    if parsed.version == 6:
        return f"{ADDRESS_PREFIX}{ipaddress.ip_network((parsed, 64), strict=False)}"
    return f"{ADDRESS_PREFIX}{parsed}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """A login attempt, counted in advance: whether a key was locked when it arrived, and the
    failure count each key reached with it (what a success gives back)."""

    locked: bool = False
    counts: tuple[tuple[str, int], ...] = ()


class Lockout:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.enabled = settings.lockout_enabled
        self.free_attempts = settings.lockout_free_attempts
        self.address_free_attempts = settings.lockout_address_free_attempts
        self.base_s = settings.lockout_base_s
        self.max_s = settings.lockout_max_s
        self.reset_s = settings.lockout_reset_s
        self.store = store

    def keys(self, namespace: str, identity: str | None, address: str | None) -> list[str]:
        """The counters an attempt is charged to: the identity's (``None``: unknown, no row is
        created for it) and the client address's (``None``: the transport does not know it)."""
        keys = [] if identity is None else [identity_key(namespace, identity)]
        if address:
            keys.append(address_key(address))
        return keys

    def backoff_s(self, failures: int, free_attempts: int | None = None) -> float:
        free = self.free_attempts if free_attempts is None else free_attempts
        if failures < free:
            return 0.0
        return min(self.max_s, self.base_s * 2 ** min(failures - free, 62))

    def _free_attempts(self, key: str) -> int:
        return self.address_free_attempts if key.startswith(ADDRESS_PREFIX) else self.free_attempts

    def reserve_sync(self, conn: Connection, keys: Sequence[str], now: float) -> Attempt:
        """Count one failure on each key now, inside the caller's write transaction; the attempt
        is locked if any key was locked before it. Each counter row is locked until commit (and
        created without a unique-key race), so concurrent attempts on every replica queue here."""
        if not self.enabled or not keys:
            return Attempt()
        locked = False
        counts: list[tuple[str, int]] = []
        for key in sorted(set(keys)):  # one order everywhere: two attempts never deadlock
            was_locked, failures = self._count(conn, key, now)
            locked = locked or was_locked
            counts.append((key, failures))
        return Attempt(locked=locked, counts=tuple(counts))

    def _count(self, conn: Connection, key: str, now: float) -> tuple[bool, int]:
        row = conn.execute(_upsert(conn, key, now)).one()
        locked = row.locked_until > now
        failures = 1 if now - row.last_failure_at > self.reset_s else row.failures + 1
        locked_until = max(row.locked_until, now + self.backoff_s(failures, self._free_attempts(key)))
        conn.execute(
            update(lockouts)
            .where(lockouts.c.key == key)
            .values(failures=failures, last_failure_at=now, locked_until=locked_until)
        )
        return locked, failures

    def release_sync(self, conn: Connection, attempt: Attempt) -> None:
        """A successful attempt gives its counts back, inside the grant's transaction: the
        identity forgets every failure up to this attempt (what a success proves), the address
        only this attempt (a valid account must not wash an address's guesses away). Failures
        counted after it, by concurrent attempts, stay, and so does any lock they caused."""
        for key, failures in attempt.counts:
            given_back = failures if key.startswith(IDENTITY_PREFIX) else 1
            conn.execute(
                update(lockouts).where(lockouts.c.key == key).values(failures=lockouts.c.failures - given_back)
            )
            conn.execute(delete(lockouts).where(lockouts.c.key == key, lockouts.c.failures <= 0))

    async def release(self, attempt: Attempt) -> None:
        """:meth:`release_sync` in a transaction of its own."""
        if attempt.counts:
            await self.store.run_write(self.release_sync, attempt)


def _upsert(conn: Connection, key: str, now: float) -> ReturningInsert[Any]:
    """The counter row of ``key``, created if missing, row-locked until commit, in one statement.

    INSERT … ON CONFLICT DO UPDATE (a no-op update) … RETURNING: two replicas creating the same
    counter both succeed (a plain INSERT failed one of them with a unique-key violation), and a
    row deleted meanwhile by pruning is simply created again.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(lockouts).values(key=key, failures=0, last_failure_at=now, locked_until=0.0)
    return statement.on_conflict_do_update(
        index_elements=[lockouts.c.key], set_={"key": statement.excluded.key}
    ).returning(lockouts.c.failures, lockouts.c.last_failure_at, lockouts.c.locked_until)
