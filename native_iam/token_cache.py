"""The verified-token cache rule shared by the sidecar and the token service.

token → a value derived from verifying it (the sidecar's principal and prebuilt response, the
token service's claims). Bounded in number (LRU); an entry lives at most ``ttl_s`` and never past
the token's ``exp``. Each entry records the *epoch* its verifier read *before* verifying (a
generation that any revocation or key change moves); a lookup with another epoch misses, so a
revocation is never answered from the cache once the epoch has moved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

from cachetools import TLRUCache

__all__ = ["CachedToken", "TokenCache"]

V = TypeVar("V")


class CachedToken(NamedTuple, Generic[V]):
    value: V
    epoch: int
    expires_at: float  # on the cache's clock (monotonic)


class TokenCache(Generic[V]):
    def __init__(self, *, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = max_entries > 0 and ttl_s > 0
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: TLRUCache[str, CachedToken[V]] = TLRUCache(
            maxsize=max(max_entries, 1), ttu=lambda _k, v, _now: v.expires_at, timer=clock
        )
        # cachetools caches are not thread-safe; the lock is uncontended on one event loop.
        self._lock = threading.Lock()

    def get(self, token: str, epoch: int) -> CachedToken[V] | None:
        """The entry for ``token`` if it was stored at ``epoch`` and has not expired."""
        with self._lock:
            entry = self._cache.get(token)
        if entry is None or entry.epoch != epoch:
            return None
        return entry

    def put(self, token: str, value: V, *, epoch: int, exp_unix: float, now_unix: float) -> None:
        """Store ``value`` verified at ``epoch`` (read before verifying) for a token expiring at ``exp_unix``."""
        if not self.enabled:
            return
        now = self._clock()
        # Never beyond exp (no leeway here: leeway is for clock skew at verification time).
        expires_at = min(now + self._ttl_s, now + (exp_unix - now_unix))
        if expires_at <= now:
            return
        with self._lock:
            self._cache[token] = CachedToken(value, epoch, expires_at)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)
