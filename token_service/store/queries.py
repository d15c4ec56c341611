"""The queries on the grant and check paths (SQLAlchemy Core; one round trip each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from token_service.store.tables import identities, passwords, policies, tokens

__all__ = [
    "identity_for_grant",
    "insert_tokens",
    "login_record",
    "mark_spent",
    "token_for_check",
    "token_record",
]


async def login_record(conn: AsyncConnection, namespace: str, name: str) -> Row[Any] | None:
    """Identity id/active plus its password hash and whether password auth is enabled."""
    query = (
        select(identities.c.id, identities.c.active, passwords.c.hash, passwords.c.enabled)
        .select_from(identities.outerjoin(passwords, passwords.c.identity_id == identities.c.id))
        .where(identities.c.namespace == namespace, identities.c.name == name)
    )
    return (await conn.execute(query)).first()


async def identity_for_grant(conn: AsyncConnection, identity_id: int) -> Row[Any] | None:
    """The identity and its policy grants, share-locked until the grant commits.

    The lock makes "disable identity" and "issue a token" serialize on PostgreSQL: either the
    disable waits for the grant (and its cut-off then covers the new token) or the grant sees the
    identity disabled. SQLite serializes writers anyway.
    """
    query = (
        select(
            identities.c.id,
            identities.c.namespace,
            identities.c.name,
            identities.c.active,
            identities.c.policy_cutoff_at,
            policies.c.grants,
        )
        .select_from(identities.outerjoin(policies, policies.c.identity_id == identities.c.id))
        .where(identities.c.id == identity_id)
        .with_for_update(read=True, of=identities)
    )
    return (await conn.execute(query)).first()


async def token_record(conn: AsyncConnection, jti: str, lock: bool = False) -> Row[Any] | None:
    """A token's row; ``lock`` takes a row lock (refresh-token rotation)."""
    query = select(tokens).where(tokens.c.jti == jti)
    if lock:
        query = query.with_for_update(of=tokens)
    return (await conn.execute(query)).first()


async def token_for_check(conn: AsyncConnection, jti: str) -> Row[Any] | None:
    """What CheckAccess needs: token state plus its identity's state (NULLs when deleted)."""
    query = (
        select(
            tokens.c.state,
            identities.c.id.label("identity_row"),
            identities.c.active,
            identities.c.policy_cutoff_at,
        )
        .select_from(tokens.outerjoin(identities, identities.c.id == tokens.c.identity_id))
        .where(tokens.c.jti == jti)
    )
    return (await conn.execute(query)).first()


async def insert_tokens(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    await conn.execute(tokens.insert(), list(rows))


async def mark_spent(conn: AsyncConnection, jti: str, at: float) -> None:
    await conn.execute(update(tokens).where(tokens.c.jti == jti).values(spent_at=at))
