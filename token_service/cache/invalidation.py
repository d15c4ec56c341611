"""CheckAccess cache invalidation across replicas through Redis pub/sub.

Every local commit that appended revocation events (the store's commit listener: the writes of
:mod:`token_service.revocations` and the others that append feed events) publishes one message on
:data:`CHANNEL`; every replica and worker subscribes and voids its CheckAccess cache
(:meth:`token_service.check_cache.CheckCache.remote_revocation`) and wakes its feed tail on each
message from another process, so a revocation written through any replica is refused everywhere
within milliseconds instead of at the next poll of the events table.

Pub/sub is an accelerator, never the guarantee: the feed tail keeps polling (and PostgreSQL's
NOTIFY keeps waking it), and the cache still switches off when the tail has not read for its
staleness bound. A lost subscription therefore falls back to today's rule by itself; it is
re-established with back-off, and the cache is voided on every (re)subscription since messages
published meanwhile were lost. A failed publish is counted and logged, and the other replicas
see the revocation at their next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

from redis.exceptions import RedisError

from token_service.cache.client import KEY_PREFIX, Cache
from token_service.check_cache import CheckCache

__all__ = ["CHANNEL", "Invalidation"]

CHANNEL = f"{KEY_PREFIX}revocations"
#: Back-off between subscription attempts while Redis is unreachable (doubling up to the max).
RESUBSCRIBE_MIN_S = 0.1
RESUBSCRIBE_MAX_S = 2.0

log = logging.getLogger(__name__)


class Invalidation:
    def __init__(self, cache: Cache, checks: CheckCache, on_remote: Callable[[], None] = lambda: None) -> None:
        self.cache = cache
        self.checks = checks
        self.on_remote = on_remote
        #: This process's messages carry it, so its own revocations (already voided locally) are skipped.
        self.origin = secrets.token_hex(8)
        #: Whether the subscription is up right now (tests, diagnostics).
        self.subscribed = asyncio.Event()
        self._publishing: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._subscribe_forever(), name="cache-invalidation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._publishing):
            task.cancel()

    def committed(self) -> None:
        """Commit listener: publish without delaying the write's caller (its own cache is voided
        by CheckCache.invalidate, registered before this)."""
        task = asyncio.get_running_loop().create_task(self._publish(), name="cache-invalidation-publish")
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self) -> None:
        with contextlib.suppress(Exception):  # counted and logged by Cache.run; the poll covers it
            await self.cache.run("publish", lambda r: r.publish(CHANNEL, self.origin))

    def _received(self, data: str) -> None:
        if data != self.origin:
            self.checks.remote_revocation()
            self.on_remote()

    async def _subscribe_forever(self) -> None:
        delay = RESUBSCRIBE_MIN_S
        reported = False  # one warning per outage, not one per attempt
        while True:
            client = self.cache.new_client()
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                # Anything published while we were not listening is lost: void everything once.
                self.checks.remote_revocation()
                self.subscribed.set()
                delay, reported = RESUBSCRIBE_MIN_S, False
                log.info("cache invalidation subscribed", extra={"cache": self.cache.url})
                while True:
                    # A timeout lets redis-py run its health check (PING) on a quiet connection.
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._received(str(message.get("data")))
            except (RedisError, OSError, TimeoutError) as exc:
                if not reported:
                    log.warning(
                        "cache invalidation not subscribed; the feed poll covers it until Redis answers",
                        extra={"cache": self.cache.url, "error": type(exc).__name__},
                    )
                    reported = True
                self.cache.count_error("subscribe", exc)
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESUBSCRIBE_MAX_S)
