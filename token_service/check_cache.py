"""CheckAccess's cache: access tokens already verified *and* found alive in the store.

A hit skips the signature check and the database read. Correctness rests on the revocation feed:
every write that can make a stored token fail CheckAccess (token disabled or deleted, identity
disabled, deleted or cut off by a policy change, key retired, client revocation, refresh-token
reuse) appends a feed event in its own transaction. So:

* ``generation`` moves when this process commits such a write (the store's commit listener runs
  before the write's caller gets its answer) and when the feed tail reads events written by any
  replica or worker; entries stored under an older generation never match again
  (:class:`native_iam.token_cache.TokenCache`, the sidecar's rule);
* workers of one host (NATIVE_IAM_WORKERS) also share a counter in shared memory that every
  such commit moves, so a revocation through one worker voids the others' entries at once, not
  at their next poll of the feed;
* with ``SYSTEM_CACHE_URL``, a Redis pub/sub message from another replica moves it too
  (:mod:`token_service.cache.invalidation`): milliseconds rather than a poll interval; the
  rules below still hold without it;
* the cache is used only while the tail is fresh: a tail that has not read the table within
  ``max_staleness_s`` (or never started, e.g. a bare :class:`~token_service.core.Core` in tests)
  means every check goes to the database again — fail closed, never stale.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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
        self._local = 0  # moves on every revocation event this process commits or its tail reads
        #: The workers' shared counter (a ``multiprocessing.Value('Q')``), set by the supervisor.
        self.shared: Any = None
        #: When the feed tail last read the events table successfully (cache clock).
        self.tail_read_at = float("-inf")

    @property
    def generation(self) -> int:
        """Read before verifying; any revocation seen since makes it differ."""
        shared = self.shared
        return self._local if shared is None else self._local + shared.value

    def invalidate(self) -> None:
        """This process committed a revocation event: every cached answer here and in the other
        workers is void."""
        self._local += 1
        if self.shared is not None:
            with self.shared.get_lock():  # atomic: two workers' increments must both count
                self.shared.value += 1

    def remote_revocation(self) -> None:
        """Another replica committed a revocation (a Redis pub/sub message), or messages may have
        been missed (a (re)subscription): every cached answer of this process is void."""
        self._local += 1

    def tail_read(self, events: int) -> None:
        """The feed tail read the events table (``events`` new ones) successfully just now."""
        if events:
            self._local += 1
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
