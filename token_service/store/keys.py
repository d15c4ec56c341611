"""Statements on stored signing keys (table ``signing_keys``), once each."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import RowMapping, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from token_service.store.tables import signing_keys

__all__ = ["all_keys", "insert", "retire", "retire_others"]


async def all_keys(conn: AsyncConnection) -> list[RowMapping]:
    return list((await conn.execute(signing_keys.select())).mappings().all())


async def insert(conn: AsyncConnection, values: Mapping[str, Any]) -> None:
    """Store one key; ``values`` has a value for every column of ``signing_keys``."""
    await conn.execute(signing_keys.insert().values(**values))


async def retire_others(conn: AsyncConnection, kid: str, retire_at: float, expire_at: float) -> None:
    """Schedule every not yet retired key but ``kid`` to retire (and expire) at these instants."""
    await conn.execute(
        update(signing_keys)
        .where(signing_keys.c.kid != kid, signing_keys.c.retire_at.is_(None))
        .values(retire_at=retire_at, expire_at=expire_at)
    )


def retire(conn: Connection, kid: str, now: float) -> None:
    """Retire and expire ``kid`` now (written only through :mod:`token_service.revocations`)."""
    conn.execute(update(signing_keys).where(signing_keys.c.kid == kid).values(retire_at=now, expire_at=now))
