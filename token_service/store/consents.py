"""Consents in the database (table ``consents``, migration 0150), each statement once.

The domain rules (what counts as covered, when to ask again) live in :mod:`token_service.consents`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from token_service.store.tables import consents, identities

__all__ = ["delete_consent", "granted_scopes", "listing", "upsert"]


def granted_scopes(conn: Connection, identity_id: int, identity_uid: str, client_id: str) -> str | None:
    """The scopes this identity incarnation approved for the client (space-separated), or None."""
    row = conn.execute(
        select(consents.c.scopes).where(
            consents.c.identity_id == identity_id,
            consents.c.identity_uid == identity_uid,
            consents.c.client_id == client_id,
        )
    ).first()
    return None if row is None else str(row.scopes)


def upsert(conn: Connection, identity_id: int, identity_uid: str, client_id: str, scopes: str, now: float) -> None:
    """Store the consent (replacing the row of an earlier incarnation or scope set)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = {
        "identity_id": identity_id,
        "identity_uid": identity_uid,
        "client_id": client_id,
        "scopes": scopes,
        "granted_at": now,
    }
    statement = dialect.insert(consents).values(**values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[consents.c.identity_id, consents.c.client_id],
            set_={"identity_uid": identity_uid, "scopes": scopes, "granted_at": now},
        )
    )


async def listing(
    conn: AsyncConnection, *, namespace: str | None, identity: str | None, client_id: str | None, limit: int
) -> list[Row[Any]]:
    """Consents (with the identity's namespace and name), ordered by namespace, name, client."""
    query = (
        select(
            identities.c.namespace,
            identities.c.name,
            consents.c.client_id,
            consents.c.scopes,
            consents.c.granted_at,
        )
        .select_from(
            consents.join(
                identities,
                (identities.c.id == consents.c.identity_id) & (identities.c.uid == consents.c.identity_uid),
            )
        )
        .order_by(identities.c.namespace, identities.c.name, consents.c.client_id)
        .limit(limit)
    )
    if namespace is not None:
        query = query.where(identities.c.namespace == namespace)
    if identity is not None:
        query = query.where(identities.c.name == identity)
    if client_id is not None:
        query = query.where(consents.c.client_id == client_id)
    return list((await conn.execute(query)).all())


async def delete_consent(conn: AsyncConnection, *, namespace: str, identity: str, client_id: str | None) -> int:
    """Forget the identity's consent for one client (every client when None); how many rows."""
    ids = select(identities.c.id).where(identities.c.namespace == namespace, identities.c.name == identity)
    statement = delete(consents).where(consents.c.identity_id.in_(ids.scalar_subquery()))
    if client_id is not None:
        statement = statement.where(consents.c.client_id == client_id)
    result = await conn.execute(statement)
    return int(result.rowcount or 0)
