"""Statements on the revocation feed (tables ``revocations``, ``feed_counter``), once each.

Every event gets the next ``sequence`` from the single ``feed_counter`` row *in the writer's own
transaction*. The row lock that the UPDATE takes is held until commit, so a second writer cannot
take a sequence number until the first has committed: events become visible in sequence order,
and a subscriber tailing ``sequence > cursor`` can never skip one (which plain auto-increment ids
allow on PostgreSQL when two transactions commit out of id order). On PostgreSQL the writer also
sends ``NOTIFY native_iam_feed`` (delivered at commit) so other replicas wake at once.

Only :mod:`token_service.revocations` appends events; the feed (:mod:`token_service.feed.hub`) reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from token_service.store.db import EVENTS_WRITTEN
from token_service.store.tables import feed_counter, revocations

__all__ = [
    "NOTIFY_CHANNEL",
    "Event",
    "append",
    "compacted_through",
    "delete_events",
    "events",
    "head",
    "latest_cutoff",
    "mark_compacted",
]

NOTIFY_CHANNEL = "native_iam_feed"


@dataclass(frozen=True, slots=True)
class Event:
    """One revocation (or its lifting), before it has a sequence number."""

    target: int
    reason: int
    expires_unix: int
    jti: str = ""
    namespace: str = ""
    identity: str = ""
    kid: str = ""
    cutoff_unix: int = 0
    lifted: bool = False
    client_id: str = ""


def append(conn: Connection, new: Sequence[Event], now: float) -> list[int]:
    """Store ``new`` in the current transaction; their sequence numbers."""
    if not new:
        return []
    result = conn.execute(
        update(feed_counter)
        .where(feed_counter.c.id == 1)
        .values(last_sequence=feed_counter.c.last_sequence + len(new))
        .returning(feed_counter.c.last_sequence)
    )
    last = int(result.scalar_one())
    first = last - len(new) + 1
    rows = [
        {
            "sequence": first + i,
            "target": e.target,
            "reason": e.reason,
            "jti": e.jti,
            "namespace": e.namespace,
            "identity": e.identity,
            "kid": e.kid,
            "cutoff_unix": e.cutoff_unix,
            "expires_unix": e.expires_unix,
            "lifted": e.lifted,
            "client_id": e.client_id,
            "created_at": now,
        }
        for i, e in enumerate(new)
    ]
    conn.execute(revocations.insert(), rows)
    conn.info[EVENTS_WRITTEN] = True  # the store wakes this replica's feed after the commit
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": NOTIFY_CHANNEL, "payload": str(last)})
    return [row["sequence"] for row in rows]


async def head(conn: AsyncConnection) -> int:
    """The newest committed event's sequence (0: none). Not ``feed_counter``: that may run ahead
    of committed rows inside an open transaction, and nothing may be skipped."""
    return int((await conn.execute(select(func.max(revocations.c.sequence)))).scalar() or 0)


async def events(conn: AsyncConnection, *, after: int = 0, through: int | None = None) -> list[Row[Any]]:
    """Stored events with ``after < sequence <= through`` (no upper bound: None), by sequence."""
    query = select(revocations).where(revocations.c.sequence > after).order_by(revocations.c.sequence)
    if through is not None:
        query = query.where(revocations.c.sequence <= through)
    return list((await conn.execute(query)).all())


async def delete_events(conn: AsyncConnection, sequences: Sequence[int]) -> None:
    for start in range(0, len(sequences), 500):  # bounded IN lists
        await conn.execute(delete(revocations).where(revocations.c.sequence.in_(sequences[start : start + 500])))


async def mark_compacted(conn: AsyncConnection, through: int) -> None:
    """Record that events up to ``through`` may be gone (never moves backwards)."""
    await conn.execute(
        update(feed_counter)
        .where(feed_counter.c.id == 1, feed_counter.c.compacted_through < through)
        .values(compacted_through=through)
    )


async def compacted_through(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(feed_counter.c.compacted_through))).scalar_one())


async def latest_cutoff(
    conn: AsyncConnection,
    *,
    target: int,
    reason: int,
    namespace: str = "",
    identity: str = "",
    client_id: str = "",
    expiring_from: int,
) -> int | None:
    """The largest ``cutoff_unix`` of the subject's (target, reason) events expiring at or after
    ``expiring_from`` (a bound that lets the ``expires_unix`` index skip older events)."""
    found = (
        await conn.execute(
            select(func.max(revocations.c.cutoff_unix)).where(
                revocations.c.expires_unix >= expiring_from,
                revocations.c.target == target,
                revocations.c.reason == reason,
                revocations.c.namespace == namespace,
                revocations.c.identity == identity,
                revocations.c.client_id == client_id,
            )
        )
    ).scalar()
    return None if found is None else int(found)
