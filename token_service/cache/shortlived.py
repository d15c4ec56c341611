""":class:`~token_service.shortlived.ShortLived` in Redis: one string key per value under
``native-iam:sl:{kind}:{key}`` with a native TTL, so nothing needs pruning.

``add`` is ``SET NX PX`` and ``take`` is ``GETDEL``: each one command, atomic on the server, so a
single-use ``jti`` is claimed once and a code redeemed once across every replica. A Redis that
cannot be reached answers :class:`~token_service.errors.Unavailable` (never a 500; see docs/token-service.md, Redis).
"""

from __future__ import annotations

import math

from token_service.cache.client import KEY_PREFIX, Cache
from token_service.shortlived import check_kind_and_key, check_ttl

__all__ = ["RedisShortLived"]

PREFIX = f"{KEY_PREFIX}sl:"
OPERATION = "short_lived"


def _name(kind: str, key: str) -> str:
    check_kind_and_key(kind, key)
    # kind never contains ':' in practice, but the length prefix makes (kind, key) pairs unambiguous anyway.
    return f"{PREFIX}{len(kind)}:{kind}:{key}"


def _ttl_ms(ttl_s: float) -> int:
    check_ttl(ttl_s)
    return max(1, math.ceil(ttl_s * 1000))


class RedisShortLived:
    """Short-lived values in Redis (``SYSTEM_CACHE_URL``)."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    async def put(self, kind: str, key: str, value: str, ttl_s: float) -> None:
        name, ttl = _name(kind, key), _ttl_ms(ttl_s)
        await self.cache.run(OPERATION, lambda r: r.set(name, value, px=ttl))

    async def add(self, kind: str, key: str, value: str, ttl_s: float) -> bool:
        name, ttl = _name(kind, key), _ttl_ms(ttl_s)
        return bool(await self.cache.run(OPERATION, lambda r: r.set(name, value, px=ttl, nx=True)))

    async def get(self, kind: str, key: str) -> str | None:
        name = _name(kind, key)
        return await self.cache.run(OPERATION, lambda r: r.get(name))

    async def take(self, kind: str, key: str) -> str | None:
        name = _name(kind, key)
        return await self.cache.run(OPERATION, lambda r: r.getdel(name))

    async def delete(self, kind: str, key: str) -> None:
        name = _name(kind, key)
        await self.cache.run(OPERATION, lambda r: r.delete(name))
