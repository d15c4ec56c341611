"""Statements on short-lived values (table ``short_lived``), once each; the interface and its
rules live in :mod:`token_service.shortlived`.

A row whose ``expires_at`` has passed is treated as absent by every statement here, so the
answers never depend on when :mod:`token_service.prune` last ran.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from native_iam.limits import MAX_SHORT_LIVED_KEY_LENGTH as MAX_KEY_LENGTH
from native_iam.limits import MAX_SHORT_LIVED_KIND_LENGTH as MAX_KIND_LENGTH
from token_service.store.db import delete_batch
from token_service.store.tables import short_lived

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_KIND_LENGTH",
    "delete_expired_batch",
    "delete_key",
    "insert_if_absent",
    "live_value",
    "take",
    "upsert",
]


def _insert(conn: Connection):  # type: ignore[no-untyped-def]
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(short_lived)


def upsert(conn: Connection, kind: str, key: str, value: str, expires_at: float) -> None:
    statement = _insert(conn).values(kind=kind, key=key, value=value, expires_at=expires_at)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[short_lived.c.kind, short_lived.c.key],
            set_={"value": statement.excluded.value, "expires_at": statement.excluded.expires_at},
        )
    )


def insert_if_absent(conn: Connection, kind: str, key: str, value: str, now: float, expires_at: float) -> bool:
    """Insert, or overwrite an expired row; whether it was written (one statement: atomic on both stores)."""
    statement = _insert(conn).values(kind=kind, key=key, value=value, expires_at=expires_at)
    # ON CONFLICT … DO UPDATE … WHERE the old row has expired: a live row is left alone and the
    # statement returns no row; concurrent claimers serialise on the key's row lock.
    upsert_expired = statement.on_conflict_do_update(
        index_elements=[short_lived.c.kind, short_lived.c.key],
        set_={"value": statement.excluded.value, "expires_at": statement.excluded.expires_at},
        where=short_lived.c.expires_at <= now,
    ).returning(short_lived.c.key)
    return conn.execute(upsert_expired).first() is not None


def live_value(conn: Connection, kind: str, key: str, now: float) -> str | None:
    return conn.execute(
        select(short_lived.c.value).where(
            short_lived.c.kind == kind, short_lived.c.key == key, short_lived.c.expires_at > now
        )
    ).scalar_one_or_none()


def take(conn: Connection, kind: str, key: str, now: float) -> str | None:
    """Delete the row and return its value if it was live (DELETE … RETURNING: one statement)."""
    deleted = conn.execute(
        delete(short_lived)
        .where(short_lived.c.kind == kind, short_lived.c.key == key)
        .returning(short_lived.c.value, short_lived.c.expires_at)
    ).first()
    if deleted is None or deleted.expires_at <= now:
        return None
    return str(deleted.value)


def delete_key(conn: Connection, kind: str, key: str) -> None:
    conn.execute(delete(short_lived).where(short_lived.c.kind == kind, short_lived.c.key == key))


def delete_expired_batch(conn: Connection, now: float, batch: int) -> int:
    """Delete up to ``batch`` expired rows; how many."""
    return delete_batch(conn, short_lived, short_lived.c.key, short_lived.c.expires_at <= now, batch)
