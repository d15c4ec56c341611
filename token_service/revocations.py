"""Recording that tokens are dead: the one function every token revocation calls.

Disabling a token row and publishing its revocation event happen in the caller's transaction,
so a sidecar learns of exactly the tokens that were disabled, no more and no fewer. Callers:
refresh-token reuse (family), RFC 7009 revocation by the client, a password change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from token_service import events
from token_service.store.tables import tokens

__all__ = ["disable_tokens", "disable_tokens_sync"]


def disable_tokens_sync(conn: Connection, condition: ColumnElement[Any], reason: int, now: float) -> int:
    """Disable the active tokens matching ``condition``, one TOKEN event (``reason``) each; how many."""
    rows = conn.execute(
        update(tokens)
        .where(condition, tokens.c.state == "active")
        .values(state="disabled")
        .returning(tokens.c.jti, tokens.c.expires_at)
    ).all()
    events.append_sync(
        conn,
        [
            events.Event(target=events.Target.TOKEN, reason=reason, jti=row.jti, expires_unix=row.expires_at)
            for row in rows
        ],
        now,
    )
    return len(rows)


async def disable_tokens(conn: AsyncConnection, condition: ColumnElement[Any], reason: int, now: float) -> int:
    """:func:`disable_tokens_sync` on an async connection."""
    return await conn.run_sync(disable_tokens_sync, condition, reason, now)
