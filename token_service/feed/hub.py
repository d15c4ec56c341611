"""The revocation feed, consumer side: Feed.WatchRevocations as feed.proto documents it.

One :class:`FeedHub` per process tails the ``revocations`` table (strictly increasing sequence,
committed in order, see :mod:`token_service.store.revocations`) and fans new events out to every open
stream. It wakes on:

* PostgreSQL ``NOTIFY native_iam_feed`` (a dedicated asyncpg connection; events written through
  another replica arrive within milliseconds),
* a local write that appended events (a post-commit hook of the store),
* and, as a safety net, a poll every NATIVE_IAM_FEED_POLL_S.

A stream first sends the full effective set (snapshot) when its cursor is 0, older than what
compaction kept, or ahead of the database; otherwise every event after the cursor. Either ends
with ``synced``; then events as they happen and a HEARTBEAT every NATIVE_IAM_FEED_HEARTBEAT_S.

Live fan-out is built to cost little per stream (a thousand sidecars may watch one replica): the
hub wakes every waiting stream by setting one :class:`asyncio.Event` (no lock to re-acquire, no
Task or timer per stream), heartbeats come from one hub-wide tick rather than a timeout per
stream, and each distinct message of a wake-up (the EVENTS after a given cursor, or a HEARTBEAT
at it) is built once and sent by every stream at that cursor.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc

from native_iam.limits import MAX_SUBSCRIBER_BYTES
from native_iam.oauth.v1 import feed_pb2
from native_iam.revocation_subjects import subject
from token_service.core import Core
from token_service.errors import InvalidRequest
from token_service.metrics import Metrics
from token_service.store import revocations as feed_log
from token_service.store.revocations import NOTIFY_CHANNEL

__all__ = ["FeedHub", "effective_set"]

log = logging.getLogger(__name__)

Kind = feed_pb2.WatchRevocationsResponse
#: Revocations per message (the proto promises "at most a few thousand").
CHUNK = 2000
#: Recent events kept in memory so live subscribers never query the database.
BUFFER = 20_000


def _message(row: Any) -> feed_pb2.Revocation:
    return feed_pb2.Revocation(
        sequence=row.sequence,
        target=row.target,
        reason=row.reason,
        jti=row.jti,
        namespace=row.namespace,
        identity=row.identity,
        kid=row.kid,
        cutoff_unix=row.cutoff_unix,
        expires_unix=row.expires_unix,
        lifted=bool(row.lifted),
        client_id=row.client_id,
    )


def effective_set(events: Iterable[feed_pb2.Revocation], now_unix: float) -> list[feed_pb2.Revocation]:
    """The revocations in force: newest event per subject (the rule the sidecar applies, see
    :mod:`native_iam.revocation_subjects`), not lifted, not expired; by sequence."""
    latest: dict[tuple[Any, ...], feed_pb2.Revocation] = {}
    for r in events:
        key = subject(r)
        if key not in latest or latest[key].sequence < r.sequence:
            latest[key] = r
    return sorted((r for r in latest.values() if not r.lifted and r.expires_unix > now_unix), key=lambda r: r.sequence)


class FeedHub:
    """Tails the event table once per process and serves every WatchRevocations stream."""

    def __init__(self, core: Core, metrics: Metrics | None = None) -> None:
        self.core = core
        self.metrics = metrics
        self.settings = core.settings
        #: Newest sequence read from the database (every event up to it is in ``_recent`` or older).
        self.head = 0
        self._recent: collections.deque[feed_pb2.Revocation] = collections.deque(maxlen=BUFFER)
        #: Set (then replaced by a fresh one) when the head advances, a heartbeat is due, or streams stop.
        self._woken = asyncio.Event()
        #: Live messages built since the last wake-up, by (kind, cursor): shared by every stream there.
        self._shared: dict[tuple[int, int], list[feed_pb2.WatchRevocationsResponse]] = {}
        self._wake = asyncio.Event()
        self._reading = asyncio.Lock()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: Any = None

    # --- tailing ---------------------------------------------------------------------------

    async def start(self) -> None:
        async with self.core.store.read() as conn:
            self.head = await feed_log.head(conn)
        self.core.checks.tail_read(0)  # the table was read: CheckAccess's cache may serve
        self.core.store.add_commit_listener(self.wake)
        self._tasks.append(asyncio.create_task(self._tail(), name="feed-tail"))
        if not self.core.store.is_sqlite:
            self._tasks.append(asyncio.create_task(self._listen(), name="feed-listen"))
        self._tasks.append(asyncio.create_task(self._compact_loop(), name="feed-compact"))
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="feed-heartbeat"))

    def wake(self) -> None:
        self._wake.set()

    def _wake_streams(self) -> None:
        """Wake every waiting stream; messages built before now are not shared any more."""
        woken, self._woken = self._woken, asyncio.Event()
        self._shared.clear()  # heartbeats carry a fresh server time; events are rebuilt to the new head
        woken.set()

    async def _heartbeat_loop(self) -> None:
        # A stream woken with nothing new sends a HEARTBEAT, so no stream is silent longer than this.
        while not self._closing:
            await asyncio.sleep(self.settings.feed_heartbeat_s)
            self._wake_streams()

    async def _tail(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.feed_poll_s)
            self._wake.clear()
            try:
                await self._read_new()
            except Exception:
                log.warning("revocation feed tail failed", exc_info=True)
                await asyncio.sleep(min(1.0, self.settings.feed_poll_s * 4))

    async def _read_new(self) -> None:
        async with self._reading:  # one reader at a time, or two could append the same events
            async with self.core.store.read() as conn:
                rows = await feed_log.events(conn, after=self.head)
            if not rows:
                self.core.checks.tail_read(0)  # keeps CheckAccess's cache fresh
                return
            # Committed in sequence order, so the rows are a gap-free continuation of head.
            fresh = [_message(row) for row in rows]
            if any(r.target == feed_pb2.KEY for r in fresh):
                await self.core.keys.reload()  # a key retired through another replica: stop trusting it now
            self._recent.extend(fresh)
            self.head = fresh[-1].sequence
            self.core.checks.tail_read(len(fresh))  # events from any replica void cached checks
            self._wake_streams()

    async def _listen(self) -> None:
        """LISTEN on PostgreSQL so events written by other replicas wake this one at once."""
        import asyncpg

        dsn = self.core.store.url.replace("postgresql+asyncpg://", "postgresql://", 1)
        while not self._closing:
            try:
                lost = asyncio.Event()
                self._listener = await asyncpg.connect(dsn)
                self._listener.add_termination_listener(lambda *_, lost=lost: lost.set())
                await self._listener.add_listener(NOTIFY_CHANNEL, lambda *_: self.wake())
                self.wake()  # catch up on anything written while not listening
                await lost.wait()  # until the connection drops (stop() cancels this task)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("feed LISTEN connection failed; polling meanwhile", extra={"error": type(exc).__name__})
                await asyncio.sleep(1.0)
            finally:
                if self._listener is not None and not self._listener.is_closed():
                    with contextlib.suppress(Exception):
                        await self._listener.close()

    async def _compact_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(max(60.0, self.settings.feed_retention_s / 100))
            try:
                await self.compact()
            except Exception:
                log.warning("revocation feed compaction failed", exc_info=True)

    async def compact(self, now: float | None = None) -> int:
        """Delete events older than the retention that no longer decide anything.

        Deleted: expired events, and events superseded by a newer one about the same subject.
        ``compacted_through`` records the newest deleted sequence: a subscriber whose cursor is
        older gets a snapshot instead of a catch-up with holes.
        """
        now = time.time() if now is None else now
        horizon = now - self.settings.feed_retention_s
        async with self.core.store.write() as conn:
            rows = await feed_log.events(conn)
            messages = [_message(r) for r in rows]
            keep = {r.sequence for r in effective_set(messages, now)}
            old = {r.sequence for r in rows if r.created_at < horizon or r.expires_unix <= now}
            doomed = sorted(old - keep)
            if not doomed:
                return 0
            await feed_log.delete_events(conn, doomed)
            await feed_log.mark_compacted(conn, doomed[-1])
        return len(doomed)

    # --- serving ---------------------------------------------------------------------------

    async def _since(self, cursor: int) -> list[feed_pb2.Revocation]:
        """Events after ``cursor`` up to ``head``, from memory when possible."""
        recent = self._recent
        if recent and recent[0].sequence <= cursor + 1:
            first, last = recent[0].sequence, recent[-1].sequence
            if last - first + 1 == len(recent):  # contiguous (the normal case): slice, don't scan
                return list(itertools.islice(recent, cursor + 1 - first, None))
            return [r for r in recent if cursor < r.sequence <= self.head]
        head = self.head
        async with self.core.store.read() as conn:
            rows = await feed_log.events(conn, after=cursor, through=head)
        return [_message(row) for row in rows]

    async def _snapshot(self) -> tuple[int, list[feed_pb2.Revocation]]:
        head = self.head
        async with self.core.store.read() as conn:
            rows = await feed_log.events(conn, through=head)
        return head, effective_set((_message(r) for r in rows), time.time())

    async def _compacted_through(self) -> int:
        async with self.core.store.read() as conn:
            return await feed_log.compacted_through(conn)

    def _response(self, kind: int, cursor: int, items: list[feed_pb2.Revocation] = (), **flags: bool) -> Any:  # type: ignore[assignment]
        return feed_pb2.WatchRevocationsResponse(
            kind=kind, revocations=items, cursor=cursor, server_time_ms=int(time.time() * 1000), **flags
        )

    def _sent(self, message: feed_pb2.WatchRevocationsResponse) -> feed_pb2.WatchRevocationsResponse:
        """Count the revocations of a message as it goes out (shared messages count once per stream)."""
        if self.metrics and message.revocations:
            label = "snapshot" if message.kind == Kind.SNAPSHOT else "events"
            self.metrics.feed_events.labels(label).inc(len(message.revocations))
        return message

    async def _live(self, cursor: int) -> list[feed_pb2.WatchRevocationsResponse]:
        """What a synced stream at ``cursor`` sends next: the EVENTS after it, else a HEARTBEAT.

        Built once per wake-up and cursor, then shared. Each message names the exact
        continuation of ``cursor`` (its events and its own ``cursor``), so any stream at that
        cursor may send it even if the head has moved on meanwhile.
        """
        key = (Kind.EVENTS if self.head > cursor else Kind.HEARTBEAT, cursor)
        built = self._shared.get(key)
        if built is None:
            if key[0] == Kind.HEARTBEAT:
                built = [self._response(Kind.HEARTBEAT, cursor)]
            else:
                fresh = await self._since(cursor)
                chunks = [fresh[i : i + CHUNK] for i in range(0, len(fresh), CHUNK)]
                built = [self._response(Kind.EVENTS, chunk[-1].sequence, chunk) for chunk in chunks]
            if built:  # nothing (events compacted away under the database path): ask again next time
                self._shared[key] = built
        return built

    async def watch(
        self, request: feed_pb2.WatchRevocationsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[feed_pb2.WatchRevocationsResponse]:
        """The WatchRevocations stream (see feed.proto)."""
        if len(request.subscriber.encode("utf-8")) > MAX_SUBSCRIBER_BYTES:
            raise InvalidRequest(f"subscriber is longer than {MAX_SUBSCRIBER_BYTES} bytes")
        if self.metrics:
            self.metrics.feed_subscribers.inc()
        log.info("feed subscriber connected", extra={"subscriber": request.subscriber, "cursor": request.cursor})
        try:
            cursor = request.cursor
            if cursor > self.head:
                await self._read_new()  # the cursor may come from a replica that tailed further
            if cursor == 0 or cursor > self.head or cursor < await self._compacted_through():
                cursor, entries = await self._snapshot()
                chunks = [entries[i : i + CHUNK] for i in range(0, len(entries), CHUNK)] or [[]]
                for i, chunk in enumerate(chunks):
                    yield self._sent(
                        self._response(Kind.SNAPSHOT, cursor, chunk, reset=i == 0, synced=i == len(chunks) - 1)
                    )
            else:
                missed = await self._since(cursor)
                for start in range(0, len(missed), CHUNK):
                    chunk = missed[start : start + CHUNK]
                    last = start + CHUNK >= len(missed)
                    yield self._sent(self._response(Kind.EVENTS, chunk[-1].sequence, chunk, synced=last))
                if missed:
                    cursor = missed[-1].sequence
                else:
                    yield self._response(Kind.HEARTBEAT, cursor, synced=True)
            while not self._closing:
                if self.head <= cursor:
                    # Woken by new events, the heartbeat tick (then _live answers HEARTBEAT) or stop.
                    await self._woken.wait()
                    if self._closing:
                        break
                for message in await self._live(cursor):
                    yield self._sent(message)
                    cursor = message.cursor
        finally:
            if self.metrics:
                self.metrics.feed_subscribers.dec()
            log.info("feed subscriber gone", extra={"subscriber": request.subscriber})

    # --- shutdown --------------------------------------------------------------------------

    async def stop_streams(self) -> None:
        """End every stream now (clients reconnect to another replica with their cursor)."""
        self._closing = True
        self._wake_streams()

    async def stop(self) -> None:
        await self.stop_streams()
        self.core.store.remove_commit_listener(self.wake)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._listener is not None and not self._listener.is_closed():
            with contextlib.suppress(Exception):
                await self._listener.close()
