"""The decision cache: token → verified principal and its prebuilt allow response.

A hit skips parsing and signature verification. The rule — bounded (LRU), at most ``ttl_s``,
never past the token's ``exp``, void as soon as the *epoch* (key-set generation + revocation
generation, read before verifying) moves — is :class:`native_iam.token_cache.TokenCache`, shared
with the token service's CheckAccess; this module only says what a sidecar entry holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from native_iam.token_cache import TokenCache

from .decision import Principal


class Entry(NamedTuple):
    principal: Principal
    response: Any  # the prebuilt allow response for this principal


class DecisionCache:
    def __init__(self, *, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._cache: TokenCache[Entry] = TokenCache(max_entries=max_entries, ttl_s=ttl_s, clock=clock)

    def get(self, token: str, epoch: int) -> Entry | None:
        found = self._cache.get(token, epoch)
        return None if found is None else found.value

    def put(self, token: str, principal: Principal, epoch: int, response: Any, now_unix: float) -> None:
        self._cache.put(token, Entry(principal, response), epoch=epoch, exp_unix=principal.exp, now_unix=now_unix)

    def clear(self) -> None:
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)
