"""Writing revocation events: the producer side of the revocation feed.

Every event gets the next ``sequence`` from the single ``feed_counter`` row *in the writer's own
transaction*. The row lock that the UPDATE takes is held until commit, so a second writer cannot
take a sequence number until the first has committed: events become visible in sequence order,
and a subscriber tailing ``sequence > cursor`` can never skip one (which plain auto-increment ids
allow on PostgreSQL when two transactions commit out of id order). On PostgreSQL the writer also
sends ``NOTIFY native_iam_feed`` (delivered at commit) so other replicas wake at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from native_iam.oauth.v1 import feed_pb2
from token_service.store.db import EVENTS_WRITTEN
from token_service.store.tables import feed_counter, revocations

__all__ = ["KEY_CUTOFF_ALL", "NOTIFY_CHANNEL", "Event", "append", "append_sync"]

NOTIFY_CHANNEL = "native_iam_feed"
#: ``cutoff_unix`` of a KEY_RETIRED event: the largest int64, so that no ``iat`` escapes it. A
#: retired key's tokens are all dead, including forgeries with an ``iat`` after the retirement.
KEY_CUTOFF_ALL = 2**63 - 1

Target = feed_pb2.RevocationTarget
Reason = feed_pb2.RevocationReason


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


async def append(conn: AsyncConnection, events: Sequence[Event], now: float | None = None) -> list[int]:
    """Store ``events`` in the current transaction; return their sequence numbers."""
    return await conn.run_sync(append_sync, events, now)


def append_sync(conn: Connection, events: Sequence[Event], now: float | None = None) -> list[int]:
    """:func:`append` for code that runs on a sync connection (``Store.run_write``)."""
    if not events:
        return []
    now = time.time() if now is None else now
    result = conn.execute(
        update(feed_counter)
        .where(feed_counter.c.id == 1)
        .values(last_sequence=feed_counter.c.last_sequence + len(events))
        .returning(feed_counter.c.last_sequence)
    )
    last = int(result.scalar_one())
    first = last - len(events) + 1
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
            "created_at": now,
        }
        for i, e in enumerate(events)
    ]
    conn.execute(revocations.insert(), rows)
    conn.info[EVENTS_WRITTEN] = True  # the store wakes this replica's feed after the commit
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": NOTIFY_CHANNEL, "payload": str(last)})
    return [row["sequence"] for row in rows]
