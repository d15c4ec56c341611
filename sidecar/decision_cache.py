"""The decision cache: token → verified principal and its prebuilt allow response.

A hit skips parsing and signature verification. Entries are bounded in number (LRU), live at most
``ttl_s`` and never past the token's ``exp``. Each entry records the *epoch* (key-set generation +
revocation generation) read before it was verified; any change of keys or revocations moves the
epoch, so every older entry stops matching at once — a revocation is never answered from cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from cachetools import TLRUCache

from .decision import Principal


class Entry(NamedTuple):
    principal: Principal
    epoch: int
    expires_at: float  # monotonic clock
    response: Any  # the prebuilt allow response for this principal


class DecisionCache:
    def __init__(self, *, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._enabled = max_entries > 0 and ttl_s > 0
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: TLRUCache[str, Entry] = TLRUCache(
            maxsize=max(max_entries, 1), ttu=lambda _k, v, _now: v.expires_at, timer=clock
        )
        # cachetools caches are not thread-safe; the lock is uncontended under grpc.aio.
        self._lock = threading.Lock()

    def get(self, token: str, epoch: int) -> Entry | None:
        with self._lock:
            entry = self._cache.get(token)
        if entry is None or entry.epoch != epoch:
            return None
        return entry

    def put(self, token: str, principal: Principal, epoch: int, response: Any, now_unix: float) -> None:
        if not self._enabled:
            return
        now = self._clock()
        # Never beyond exp (no leeway here: the leeway is for clock skew at verification time).
        expires_at = min(now + self._ttl_s, now + (principal.exp - now_unix))
        if expires_at <= now:
            return
        with self._lock:
            self._cache[token] = Entry(principal, epoch, expires_at, response)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)
