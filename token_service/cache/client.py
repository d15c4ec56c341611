"""The one Redis client of a token-service process: built from ``SYSTEM_CACHE_URL`` and the
``NATIVE_IAM_CACHE_*`` settings, timed and counted per operation, every failure turned into
:class:`~token_service.errors.Unavailable` (``UNAVAILABLE`` / 503 ``temporarily_unavailable``).

Bounded: a connection opens within the connect timeout, a command answers within the command
timeout, a connection error or timeout is retried ``cache_retries`` times after a short back-off,
and a caller waits at most the command timeout for a free pooled connection. So a slow or dead
Redis costs a call about ``(retries + 1) × (connect + command timeout)`` at worst, never a hang;
and the pool reconnects by itself when Redis is back (no restart).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from token_service.errors import Unavailable
from token_service.settings import Settings, redacted_url

if TYPE_CHECKING:
    from token_service.metrics import Metrics

__all__ = ["KEY_PREFIX", "Cache"]

T = TypeVar("T")

#: Every key the token service writes starts with this: one Redis may serve other applications.
KEY_PREFIX = "native-iam:"

log = logging.getLogger(__name__)


class Cache:
    """A pooled ``redis.asyncio`` client and the metrics of its calls."""

    def __init__(self, settings: Settings) -> None:
        assert settings.cache_url is not None
        self.url = redacted_url(settings.cache_url)  # for logs: never the password
        # The whole call's bound, retries and back-off included, enforced on top of redis-py's own
        # per-socket timeouts: whatever the client library does, a call cannot outlive it.
        attempt_s = settings.cache_connect_timeout_s + settings.cache_command_timeout_s + 0.2
        self.deadline_s = settings.cache_command_timeout_s + (settings.cache_retries + 1) * attempt_s
        retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), settings.cache_retries)
        errors = [RedisConnectionError, RedisTimeoutError, OSError]
        self.pool = redis.BlockingConnectionPool.from_url(
            settings.cache_url,
            max_connections=settings.cache_pool_size,
            timeout=settings.cache_command_timeout_s,  # waiting for a free connection
            socket_connect_timeout=settings.cache_connect_timeout_s,
            socket_timeout=settings.cache_command_timeout_s,
            retry=retry,
            retry_on_error=errors,
            health_check_interval=30,
            decode_responses=True,
        )
        self.client = redis.Redis(connection_pool=self.pool)
        self.settings = settings
        #: Set by the app once its registry exists (:meth:`attach`; a bare Core in tests has none).
        self.metrics: Metrics | None = None

    def attach(self, metrics: Metrics) -> None:
        """Count into ``metrics``; the error series exist (at 0) from now on, so a rate over the time
        before the first failure can be graphed and alerted on (as native_iam_db_errors_total)."""
        self.metrics = metrics
        for operation in OPERATIONS:
            for kind in ("unavailable", "other"):
                metrics.cache_errors.labels(operation, kind)

    def new_client(self) -> redis.Redis:
        """A client with a connection of its own (pub/sub holds one for as long as it listens)."""
        return redis.Redis.from_url(
            self.settings.cache_url or "",
            socket_connect_timeout=self.settings.cache_connect_timeout_s,
            socket_keepalive=True,
            health_check_interval=5,
            decode_responses=True,
        )

    async def run(self, operation: str, call: Callable[[redis.Redis], Awaitable[T]]) -> T:
        """``await call(client)``, timed under ``operation``; any Redis failure becomes
        :class:`Unavailable` naming what is unavailable (never the URL or its password)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.deadline_s):
                return await call(self.client)
        except (RedisError, OSError, TimeoutError) as exc:
            self.count_error(operation, exc)
            log.warning(
                "redis call failed", extra={"operation": operation, "cache": self.url, "error": type(exc).__name__}
            )
            raise Unavailable(
                UNAVAILABLE_MESSAGES.get(operation, "cache unavailable; retry later"), dependency="cache"
            ) from exc
        finally:
            if self.metrics is not None:
                self.metrics.cache_latency.labels(operation).observe(time.perf_counter() - started)

    def count_error(self, operation: str, exc: BaseException) -> None:
        if self.metrics is not None:
            kind = (
                "unavailable"
                if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError))
                else "other"
            )
            self.metrics.cache_errors.labels(operation, kind).inc()

    async def close(self) -> None:
        await self.client.aclose()
        await self.pool.disconnect()


#: Every ``operation`` label of the cache metrics.
OPERATIONS = ("lockout", "short_lived", "publish", "subscribe")

#: What the caller is told when Redis is unreachable, per operation (safe to show; no URL).
UNAVAILABLE_MESSAGES = {
    "lockout": "brute-force protection unavailable; retry later",
    "short_lived": "short-lived state store unavailable; retry later",
}
