"""Brute-force counters in Redis: :mod:`token_service.lockout`'s steps as one server-side Lua
script (``counters.lua``, registered once and called by EVALSHA, EVAL when Redis lost it), so
each step is one round trip and atomic across every replica and worker.

The rule itself is :mod:`token_service.lockout`'s; the script mirrors it step for step and the
lockout test suites run against both backends.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from importlib import resources
from typing import Any

from token_service.cache.client import KEY_PREFIX, Cache

__all__ = ["OPERATION", "RedisCounters"]

PREFIX = f"{KEY_PREFIX}lockout:"
OPERATION = "lockout"
_FIELDS = ("failures", "last_failure_at", "locked_until", "pending", "pending_until")


class RedisCounters:
    """Runs one step of the lockout rule on a set of counters, in Redis."""

    def __init__(self, cache: Cache, *, reset_s: float, base_s: float, max_s: float, pending_ttl_s: float) -> None:
        self.cache = cache
        self._params = (reset_s, base_s, max_s, pending_ttl_s)
        source = resources.files("token_service.cache").joinpath("counters.lua").read_text("utf-8")
        self._script = cache.client.register_script(source)

    async def step(
        self,
        op: str,
        keys: Sequence[str],
        now: float,
        *,
        free_attempts: Sequence[int],
        uncounted: Collection[str] = (),
        identities: Collection[str] = (),
    ) -> str:
        """Run ``op`` on ``keys`` (sorted by the caller); the script's answer."""
        args: list[Any] = [op, repr(now), *map(repr, self._params)]
        for key, free in zip(keys, free_attempts, strict=True):
            args += [free, "1" if key in uncounted else "0", "1" if key in identities else "0"]
        names = [PREFIX + key for key in keys]
        return str(await self.cache.run(OPERATION, lambda _: self._script(keys=names, args=args)))

    async def read(self, key: str) -> dict[str, float] | None:
        """The stored fields of ``key``'s counter, as they are (None: no counter)."""
        values = await self.cache.run(OPERATION, lambda r: r.hmget(PREFIX + key, _FIELDS))
        if values[0] is None:
            return None
        return {name: float(value or 0) for name, value in zip(_FIELDS, values, strict=True)}
