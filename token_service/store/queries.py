"""The queries on the grant and check paths (SQLAlchemy Core; one round trip each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from token_service.store.tables import identities, passwords, policies, tokens

__all__ = [
    "identity_for_grant",
    "identity_for_grant_sync",
    "insert_tokens",
    "insert_tokens_sync",
    "login_record",
    "login_record_sync",
    "mark_spent",
    "mark_spent_sync",
    "refresh_record_sync",
    "token_for_check",
    "token_for_check_sync",
    "token_record",
    "token_record_sync",
]


#: A token's identity: the row with its id *and* its uid. An identity created later never matches,
#: even on an id that came back (see ``identities``); the outer joins then read it as deleted.
TOKEN_IDENTITY = and_(identities.c.id == tokens.c.identity_id, identities.c.uid == tokens.c.identity_uid)


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
    return (await conn.execute(_IDENTITY_FOR_GRANT, {"identity_id": identity_id})).first()


async def token_record(conn: AsyncConnection, jti: str, lock: bool = False) -> Row[Any] | None:
    """A token's row; ``lock`` takes a row lock (refresh-token rotation)."""
    query = select(tokens).where(tokens.c.jti == jti)
    if lock:
        query = query.with_for_update(of=tokens)
    return (await conn.execute(query)).first()


async def token_for_check(conn: AsyncConnection, jti: str) -> Row[Any] | None:
    """What CheckAccess needs: token state plus its identity's state (NULLs when deleted)."""
    return (await conn.execute(_token_for_check(jti))).first()


def _token_for_check(jti: str) -> Select[Any]:
    return (
        select(
            tokens.c.state,
            identities.c.id.label("identity_row"),
            identities.c.active,
            identities.c.policy_cutoff_at,
        )
        .select_from(tokens.outerjoin(identities, TOKEN_IDENTITY))
        .where(tokens.c.jti == jti)
    )


async def insert_tokens(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    await conn.execute(tokens.insert(), list(rows))


async def mark_spent(conn: AsyncConnection, jti: str, at: float) -> None:
    await conn.execute(update(tokens).where(tokens.c.jti == jti).values(spent_at=at))


# --- the same queries on a sync Connection (Store.run_read / run_write: the hot paths) ----------
#
# Built once with bind parameters: constructing a select() per call costs more than running it.

_LOGIN_RECORD = (
    select(identities.c.id, identities.c.active, passwords.c.hash, passwords.c.enabled)
    .select_from(identities.outerjoin(passwords, passwords.c.identity_id == identities.c.id))
    .where(identities.c.namespace == bindparam("namespace"), identities.c.name == bindparam("name"))
)
_IDENTITY_FOR_GRANT = (
    select(
        identities.c.id,
        identities.c.uid,
        identities.c.namespace,
        identities.c.name,
        identities.c.active,
        identities.c.policy_cutoff_at,
        policies.c.grants,
    )
    .select_from(identities.outerjoin(policies, policies.c.identity_id == identities.c.id))
    .where(identities.c.id == bindparam("identity_id"))
    .with_for_update(read=True, of=identities)
)
_REFRESH_RECORD = (
    select(
        tokens,
        identities.c.id.label("identity_row"),
        identities.c.namespace.label("identity_namespace"),
        identities.c.name.label("identity_name"),
        identities.c.active,
        policies.c.grants,
    )
    .select_from(
        tokens.outerjoin(identities, TOKEN_IDENTITY).outerjoin(policies, policies.c.identity_id == identities.c.id)
    )
    .where(tokens.c.jti == bindparam("jti"))
)
_TOKEN_RECORD = select(tokens).where(tokens.c.jti == bindparam("jti"))
_TOKEN_RECORD_LOCKED = _TOKEN_RECORD.with_for_update(of=tokens)
_TOKEN_FOR_CHECK = (
    select(tokens.c.state, identities.c.id.label("identity_row"), identities.c.active, identities.c.policy_cutoff_at)
    .select_from(tokens.outerjoin(identities, TOKEN_IDENTITY))
    .where(tokens.c.jti == bindparam("jti"))
)
_INSERT_TOKEN = tokens.insert()
_MARK_SPENT = update(tokens).where(tokens.c.jti == bindparam("target_jti")).values(spent_at=bindparam("spent_at"))


def login_record_sync(conn: Connection, namespace: str, name: str) -> Row[Any] | None:
    return conn.execute(_LOGIN_RECORD, {"namespace": namespace, "name": name}).first()


def identity_for_grant_sync(conn: Connection, identity_id: int) -> Row[Any] | None:
    """See :func:`identity_for_grant` (share lock on PostgreSQL)."""
    return conn.execute(_IDENTITY_FOR_GRANT, {"identity_id": identity_id}).first()


def refresh_record_sync(conn: Connection, jti: str) -> Row[Any] | None:
    """A refresh token's row with its identity and policy (NULLs when the identity is gone), in
    one round trip. Not locked (PostgreSQL cannot lock the nullable side of an outer join): the
    caller re-reads the identity with :func:`identity_for_grant_sync` where locks matter."""
    return conn.execute(_REFRESH_RECORD, {"jti": jti}).first()


def token_record_sync(conn: Connection, jti: str, lock: bool = False) -> Row[Any] | None:
    return conn.execute(_TOKEN_RECORD_LOCKED if lock else _TOKEN_RECORD, {"jti": jti}).first()


def token_for_check_sync(conn: Connection, jti: str) -> Row[Any] | None:
    return conn.execute(_TOKEN_FOR_CHECK, {"jti": jti}).first()


def insert_tokens_sync(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    for row in rows:  # one execute per row: executemany costs more for the one or two rows here
        conn.execute(_INSERT_TOKEN, row)


def mark_spent_sync(conn: Connection, jti: str, at: float) -> None:
    conn.execute(_MARK_SPENT, {"target_jti": jti, "spent_at": at})
