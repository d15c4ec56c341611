"""Statements on brute-force counters (table ``lockouts``), once each. The rules that decide
what a counter says live in :mod:`token_service.lockout`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from token_service.store.db import delete_batch
from token_service.store.tables import lockouts

__all__ = ["delete_counter", "delete_stale_batch", "lock_counter", "read_counter", "write_counter"]


def lock_counter(conn: Connection, key: str, now: float) -> Row[Any]:
    """The counter row of ``key``, created if missing, row-locked until commit, in one statement.

    INSERT … ON CONFLICT DO UPDATE (a no-op update) … RETURNING: two replicas creating the same
    counter both succeed (a plain INSERT failed one of them with a unique-key violation), and a
    row deleted meanwhile by pruning is simply created again.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(lockouts).values(key=key, failures=0, last_failure_at=now, locked_until=0.0)
    upsert = statement.on_conflict_do_update(
        index_elements=[lockouts.c.key], set_={"key": statement.excluded.key}
    ).returning(
        lockouts.c.failures,
        lockouts.c.last_failure_at,
        lockouts.c.locked_until,
        lockouts.c.pending,
        lockouts.c.pending_until,
    )
    return conn.execute(upsert).one()


def read_counter(conn: Connection, key: str) -> Row[Any] | None:
    """The counter row of ``key`` as stored, or None."""
    return conn.execute(select(lockouts).where(lockouts.c.key == key)).first()


def write_counter(conn: Connection, key: str, values: Mapping[str, Any]) -> None:
    conn.execute(update(lockouts).where(lockouts.c.key == key).values(**values))


def delete_counter(conn: Connection, key: str) -> None:
    conn.execute(delete(lockouts).where(lockouts.c.key == key))


def delete_stale_batch(conn: Connection, now: float, quiet_since: float, batch: int) -> int:
    """Delete up to ``batch`` counters that decide nothing any more: not locked, no attempt in
    flight, last failure before ``quiet_since``; how many."""
    no_slot_in_flight = (lockouts.c.pending == 0) | (lockouts.c.pending_until <= now)
    stale = (lockouts.c.locked_until <= now) & (lockouts.c.last_failure_at < quiet_since) & no_slot_in_flight
    return delete_batch(conn, lockouts, lockouts.c.key, stale, batch)
