"""Statements on issued tokens (table ``tokens``): every one the token service runs, once.

The grant and check paths run on a sync ``Connection`` (:meth:`Store.run_write` /
:meth:`Store.run_read`); their statements are built once with bind parameters, since building a
``select()`` per call costs more than running it. Admin listings run on an ``AsyncConnection``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from token_service.store.db import delete_batch
from token_service.store.tables import identities, oauth_clients, policies, tokens

__all__ = [
    "TOKEN_IDENTITY",
    "TokenMatch",
    "count",
    "delete_expired_batch",
    "delete_token",
    "disable_active",
    "for_check",
    "insert",
    "mark_spent",
    "page",
    "record",
    "record_async",
    "refresh_record",
    "set_state",
    "state",
]

#: A token's identity: the row with its id *and* its uid. An identity created later never matches,
#: even on an id that came back (see ``identities``); the outer joins then read it as deleted.
TOKEN_IDENTITY = and_(identities.c.id == tokens.c.identity_id, identities.c.uid == tokens.c.identity_uid)

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
_RECORD = select(tokens).where(tokens.c.jti == bindparam("jti"))
_RECORD_LOCKED = _RECORD.with_for_update(of=tokens)
_FOR_CHECK = (
    select(
        tokens.c.state,
        tokens.c.identity_id,
        tokens.c.client_id,
        identities.c.id.label("identity_row"),
        identities.c.active,
        identities.c.policy_cutoff_at,
        oauth_clients.c.client_id.label("client_row"),
        oauth_clients.c.enabled.label("client_enabled"),
        oauth_clients.c.created_at.label("client_created_at"),
    )
    .select_from(
        tokens.outerjoin(identities, TOKEN_IDENTITY).outerjoin(
            oauth_clients, oauth_clients.c.client_id == tokens.c.client_id
        )
    )
    .where(tokens.c.jti == bindparam("jti"))
)
_INSERT = tokens.insert()
_MARK_SPENT = update(tokens).where(tokens.c.jti == bindparam("target_jti")).values(spent_at=bindparam("spent_at"))


# --- grant and check paths (sync) -----------------------------------------------------------


def refresh_record(conn: Connection, jti: str) -> Row[Any] | None:
    """A refresh token's row with its identity and policy (NULLs when the identity is gone), in
    one round trip. Not locked (PostgreSQL cannot lock the nullable side of an outer join): the
    caller re-reads the identity with :func:`~token_service.store.identities.for_grant` where
    locks matter."""
    return conn.execute(_REFRESH_RECORD, {"jti": jti}).first()


def record(conn: Connection, jti: str, lock: bool = False) -> Row[Any] | None:
    """A token's row; ``lock`` takes a row lock (refresh-token rotation)."""
    return conn.execute(_RECORD_LOCKED if lock else _RECORD, {"jti": jti}).first()


async def record_async(conn: AsyncConnection, jti: str) -> Row[Any] | None:
    """:func:`record` (unlocked) on an async connection (RFC 7009 / 7662)."""
    return (await conn.execute(_RECORD, {"jti": jti})).first()


def for_check(conn: Connection, jti: str) -> Row[Any] | None:
    """What CheckAccess needs: token state plus its identity's and its client's state (NULLs
    when deleted; ``identity_id`` NULL for a client's own token)."""
    return conn.execute(_FOR_CHECK, {"jti": jti}).first()


def insert(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    for row in rows:  # one execute per row: executemany costs more for the one or two rows here
        conn.execute(_INSERT, row)


def mark_spent(conn: Connection, jti: str, at: float) -> None:
    conn.execute(_MARK_SPENT, {"target_jti": jti, "spent_at": at})


# --- revocation ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenMatch:
    """Which tokens a revocation disables: every given field must match (at least one given)."""

    jti: str | None = None
    family_id: str | None = None
    identity_id: int | None = None
    #: Only tokens that expire after this instant (Unix seconds).
    expiring_after: int | None = None
    #: Only tokens of this usage (``access`` / ``refresh``).
    usage: str | None = None

    def condition(self) -> Any:
        parts = [
            column == value
            for column, value in (
                (tokens.c.jti, self.jti),
                (tokens.c.family_id, self.family_id),
                (tokens.c.identity_id, self.identity_id),
                (tokens.c.usage, self.usage),
            )
            if value is not None
        ]
        if self.expiring_after is not None:
            parts.append(tokens.c.expires_at > self.expiring_after)
        if not parts:
            raise ValueError("a TokenMatch needs at least one field")  # never "every token"
        return and_(*parts)


def disable_active(conn: Connection, match: TokenMatch) -> list[Row[Any]]:
    """Disable the active tokens that ``match``; their (jti, expires_at)."""
    return list(
        conn.execute(
            update(tokens)
            .where(match.condition(), tokens.c.state == "active")
            .values(state="disabled")
            .returning(tokens.c.jti, tokens.c.expires_at)
        ).all()
    )


def state(conn: Connection, jti: str) -> Row[Any] | None:
    """A token's (state, expires_at), or None."""
    return conn.execute(select(tokens.c.state, tokens.c.expires_at).where(tokens.c.jti == jti)).first()


def set_state(conn: Connection, jti: str, new_state: str) -> None:
    conn.execute(update(tokens).where(tokens.c.jti == jti).values(state=new_state))


def delete_token(conn: Connection, jti: str) -> None:
    conn.execute(delete(tokens).where(tokens.c.jti == jti))


# --- administration and housekeeping --------------------------------------------------------


async def page(
    conn: AsyncConnection,
    *,
    namespace: str | None,
    identity: str | None,
    before: tuple[int, str] | None,
    limit: int,
) -> list[Row[Any]]:
    """Tokens newest first (created_at, jti descending), filtered, strictly after the keyset
    position ``before`` = (created_at, jti) of the previous page's last row."""
    query = select(tokens).order_by(tokens.c.created_at.desc(), tokens.c.jti.desc()).limit(limit)
    if namespace is not None:
        query = query.where(tokens.c.namespace == namespace)
    if identity is not None:
        query = query.where(tokens.c.identity == identity)
    if before is not None:
        created_at, jti = before
        query = query.where(
            or_(tokens.c.created_at < created_at, and_(tokens.c.created_at == created_at, tokens.c.jti < jti))
        )
    return list((await conn.execute(query)).all())


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(tokens))).scalar_one())


def delete_expired_batch(conn: Connection, expired_before: int, batch: int) -> int:
    """Delete up to ``batch`` tokens that expired before ``expired_before``; how many."""
    return delete_batch(conn, tokens, tokens.c.jti, tokens.c.expires_at < expired_before, batch)
