"""Short-lived state: values that live seconds to minutes and then mean nothing.

Authorization codes, login sessions, consent and CSRF nonces, single-use assertion ``jti`` s: each
is written once, read or claimed a few times, and forgotten when its time-to-live ends. They share
one small interface, :class:`ShortLived`, so the code that uses them never knows where they are
kept: in the database (:class:`DatabaseShortLived`, the embedded default: rows with an expiry that
every read ignores once past and :mod:`token_service.prune` deletes) or in Redis when
``SYSTEM_CACHE_URL`` is set (native TTLs, nothing to clean up).

Every value is a ``str`` (JSON where it has structure). ``kind`` names the use (``"code"``,
``"session"``, ``"jti"``…) and keeps the uses apart; keys are chosen by the caller and must not
be secrets in the clear where the key alone would grant something (store a hash of a code, not
the code).

The two operations that decide security are atomic in every implementation:

* :meth:`ShortLived.add` writes only if no live value has the key (a single-use ``jti`` is
  claimed once, across every replica);
* :meth:`ShortLived.take` reads and deletes in one step (a code is redeemed once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, Protocol

from token_service.store import Store
from token_service.store import shortlived as rows

__all__ = ["MAX_KEY_LENGTH", "MAX_KIND_LENGTH", "DatabaseShortLived", "ShortLived", "check_kind_and_key", "check_ttl"]

#: Longest ``kind`` (the column's size).
MAX_KIND_LENGTH: Final = rows.MAX_KIND_LENGTH
#: Longest key (the column's size): hash longer keys first.
MAX_KEY_LENGTH: Final = rows.MAX_KEY_LENGTH


class ShortLived(Protocol):
    """Where short-lived values live; see the module's docstring."""

    async def put(self, kind: str, key: str, value: str, ttl_s: float) -> None:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds, replacing any value it had."""

    async def add(self, kind: str, key: str, value: str, ttl_s: float) -> bool:
        """Store ``value`` only if ``key`` has no live value; whether it was stored (atomic)."""

    async def get(self, kind: str, key: str) -> str | None:
        """The live value of ``key``, or None."""

    async def take(self, kind: str, key: str) -> str | None:
        """The live value of ``key``, deleted in the same step (atomic), or None."""

    async def delete(self, kind: str, key: str) -> None:
        """Forget ``key`` (nothing if it has no value)."""


def check_kind_and_key(kind: str, key: str) -> None:
    """The bounds every implementation enforces (the database's column sizes), so a caller that
    works on one works on the other."""
    if not 0 < len(kind) <= MAX_KIND_LENGTH or not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ValueError(f"kind must be 1..{MAX_KIND_LENGTH} and key 1..{MAX_KEY_LENGTH} characters")


def check_ttl(ttl_s: float) -> None:
    """A value must live a while: a zero or negative (or NaN) time-to-live is a caller's bug."""
    if not ttl_s > 0:
        raise ValueError("ttl_s must be positive")


class DatabaseShortLived:
    """:class:`ShortLived` on the token service's database (table ``short_lived``)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def put(self, kind: str, key: str, value: str, ttl_s: float) -> None:
        check_kind_and_key(kind, key)
        check_ttl(ttl_s)
        now = self.clock()
        await self.store.run_write(rows.upsert, kind, key, value, now + ttl_s)

    async def add(self, kind: str, key: str, value: str, ttl_s: float) -> bool:
        check_kind_and_key(kind, key)
        check_ttl(ttl_s)
        now = self.clock()
        return await self.store.run_write(rows.insert_if_absent, kind, key, value, now, now + ttl_s)

    async def get(self, kind: str, key: str) -> str | None:
        check_kind_and_key(kind, key)
        return await self.store.run_read(rows.live_value, kind, key, self.clock())

    async def take(self, kind: str, key: str) -> str | None:
        check_kind_and_key(kind, key)
        return await self.store.run_write(rows.take, kind, key, self.clock())

    async def delete(self, kind: str, key: str) -> None:
        check_kind_and_key(kind, key)
        await self.store.run_write(rows.delete_key, kind, key)
