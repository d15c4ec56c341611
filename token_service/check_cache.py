"""CheckAccess's cache: access tokens already verified *and* found alive in the store.

A hit skips the signature check and the database read. Correctness rests on the revocation feed:
every write that can make a stored token fail CheckAccess (token disabled or deleted, identity
disabled, deleted or cut off by a policy change, key retired, client revocation, refresh-token
reuse) appends a feed event in its own transaction. So:

* ``generation`` moves when this process commits such a write (the store's commit listener runs
  before the write's caller gets its answer) and when the feed tail reads events written by any
  replica or worker; entries stored under an older generation never match again
  (:class:`native_iam.token_cache.TokenCache`, the sidecar's rule);
* the cache is used only while the tail is fresh: a tail that has not read the table within
  ``max_staleness_s`` (or never started, e.g. a bare :class:`~token_service.core.Core` in tests)
  means every check goes to the database again — fail closed, never stale.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from native_iam.token_cache import TokenCache
from token_service.tokens import TokenClaims

__all__ = ["CheckCache"]


class CheckCache:
    def __init__(
        self,
        *,
        max_entries: int,
        ttl_s: float,
        max_staleness_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens: TokenCache[TokenClaims] = TokenCache(max_entries=max_entries, ttl_s=ttl_s, clock=clock)
        self._clock = clock
        self.max_staleness_s = max_staleness_s
        #: Moves on every revocation event seen (local commit or feed tail) and on key reloads.
        self.generation = 0
        #: When the feed tail last read the events table successfully (cache clock).
        self.tail_read_at = float("-inf")

    def invalidate(self) -> None:
        """A revocation event was written or read: every cached answer is void."""
        self.generation += 1

    def tail_read(self, events: int) -> None:
        """The feed tail read the events table (``events`` new ones) successfully just now."""
        if events:
            self.generation += 1
        self.tail_read_at = self._clock()

    def fresh(self) -> bool:
        return self._clock() - self.tail_read_at <= self.max_staleness_s

    def get(self, token: str) -> TokenClaims | None:
        if not self.fresh():
            return None
        found = self._tokens.get(token, self.generation)
        return None if found is None else found.value

    def put(self, token: str, claims: TokenClaims, generation: int, now_unix: float) -> None:
        """Store ``claims`` checked under ``generation`` (read *before* verifying)."""
        self._tokens.put(token, claims, epoch=generation, exp_unix=claims.exp, now_unix=now_unix)

    def __len__(self) -> int:
        return len(self._tokens)
