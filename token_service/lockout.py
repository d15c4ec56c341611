"""Brute-force protection: exponential back-off, then lockout, per identity and per address.

After ``free_attempts`` consecutive failures for a key, every further failure locks the key for
``base_s * 2**(n - free_attempts)`` seconds, capped at ``max_s`` (the lockout). A quiet period of
``reset_s`` forgets the failures; a successful login clears the identity's counter. The counters
live in the database so every replica sees them. A locked attempt is answered exactly like a
wrong password (CREDENTIALS_INVALID, after a dummy hash), so lockout reveals nothing about
whether the identity exists.

Checking the counter before the verification and counting the failure after it let N concurrent
guesses all pass the check. So an attempt first *reserves* a slot on every counter
(:meth:`Lockout.reserve_sync`: one write transaction holding each counter's row lock, on any
replica), and only ``failures + pending < free_attempts`` (one at a time once past it) may be in
flight; its verdict then turns the slot into a failure (:meth:`Lockout.failed_sync`) or gives it
back (:meth:`Lockout.succeeded_sync`). Any number of concurrent attempts verifies at most the
threshold's worth of guesses; attempts beyond the free slots wait for one (:data:`Verdict.BUSY`),
so concurrent right passwords are served, not mistaken for guesses.

With ``SYSTEM_CACHE_URL`` the counters live in Redis instead (:mod:`token_service.cache.counters`):
the same steps, each one Lua script run atomically on the server (one round trip), so replicas
and workers share them without a database write per failed login. The rule is this module's;
the script mirrors it step for step, and the lockout test suites run on both backends. Redis
unreachable: :meth:`Lockout.reserve` raises :class:`~token_service.errors.Unavailable` — the
grant is refused (503 ``temporarily_unavailable`` / ``UNAVAILABLE``), never let through
unchecked — and a verdict that cannot be recorded is retried in the background while its slot
(which blocks further attempts past the free ones) is still held (docs/token-service.md, Redis).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import ipaddress
import logging
import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from token_service.cache import Cache
from token_service.cache.counters import RedisCounters
from token_service.errors import Unavailable
from token_service.settings import Settings
from token_service.store import Store
from token_service.store import lockouts as counters

log = logging.getLogger(__name__)

__all__ = ["Attempt", "Lockout", "Verdict", "address_key", "identity_key"]

#: A reserved slot older than this belongs to a process that died mid-verification (an argon2id
#: verification takes milliseconds): it no longer counts.
PENDING_TTL_S = 60.0
#: How often a verdict Redis could not record is tried again (see Lockout._settle).
RETRY_S = 0.5

IDENTITY_PREFIX = "identity:"
ADDRESS_PREFIX = "address:"


def identity_key(namespace: str, identity: str) -> str:
    """The counter key of an identity. The namespace is length-prefixed, so no pair of
    (namespace, name) shares a key with another whatever either contains ('/', ':', digits)."""
    return f"{IDENTITY_PREFIX}{len(namespace)}:{namespace}/{identity}"


def address_key(address: str) -> str:
    """The counter key of a client address. An IPv6 client counts by its /64: one subscriber is
    usually given a whole /64 and could otherwise start a fresh counter with every address."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"{ADDRESS_PREFIX}{address}"
    if parsed.version == 6:
        return f"{ADDRESS_PREFIX}{ipaddress.ip_network((parsed, 64), strict=False)}"
    return f"{ADDRESS_PREFIX}{parsed}"


class Verdict(enum.Enum):
    GO = "go"  #: a slot is reserved on every counter: verify the password
    LOCKED = "locked"  #: a counter is locked: refuse (counted as a failure already)
    BUSY = "busy"  #: every free slot is in flight: nothing changed, ask again shortly


@dataclass(frozen=True, slots=True)
class Attempt:
    """A login attempt's reservation: the verdict and its counters (holding a slot when GO)."""

    verdict: Verdict = Verdict.GO
    keys: tuple[str, ...] = ()
    #: Counters that hold a slot but never count a failure (an unknown identity's).
    uncounted: frozenset[str] = frozenset()


class Lockout:
    def __init__(self, settings: Settings, store: Store, cache: Cache | None = None) -> None:
        self.enabled = settings.lockout_enabled
        self.free_attempts = settings.lockout_free_attempts
        self.address_free_attempts = settings.lockout_address_free_attempts
        self.base_s = settings.lockout_base_s
        self.max_s = settings.lockout_max_s
        self.reset_s = settings.lockout_reset_s
        self.store = store
        #: Attempts of this process waiting for a slot (BUSY): counter keys and wake-up future.
        self._waiters: list[tuple[frozenset[str], asyncio.Future[None]]] = []
        self._freed = 0
        #: Abandoned attempts whose slots wait for their verification to end (see settle_abandoned).
        self._settling: set[asyncio.Task[None]] = set()
        #: The counters in Redis (SYSTEM_CACHE_URL), else None: they are rows in the database.
        self.shared: RedisCounters | None = None
        if cache is not None:
            self.shared = RedisCounters(
                cache, reset_s=self.reset_s, base_s=self.base_s, max_s=self.max_s, pending_ttl_s=PENDING_TTL_S
            )

    @property
    def in_database(self) -> bool:
        """Whether the counters are rows (reserved inside the grant's own transaction)."""
        return self.shared is None

    def keys(self, namespace: str, identity: str, address: str | None) -> list[str]:
        """The counters an attempt is charged to: the identity's and the client address's
        (``None``: the transport does not know it)."""
        keys = [identity_key(namespace, identity)]
        if address:
            keys.append(address_key(address))
        return keys

    def backoff_s(self, failures: int, free_attempts: int | None = None) -> float:
        free = self.free_attempts if free_attempts is None else free_attempts
        if failures < free:
            return 0.0
        return min(self.max_s, self.base_s * 2 ** min(failures - free, 62))

    def _free_attempts(self, key: str) -> int:
        return self.address_free_attempts if key.startswith(ADDRESS_PREFIX) else self.free_attempts

    def reserve_sync(
        self, conn: Connection, keys: Sequence[str], now: float, uncounted: Collection[str] = ()
    ) -> Attempt:
        """Reserve a slot on every counter of ``keys`` inside the caller's write transaction (see
        the module's docstring). A LOCKED attempt is counted as a failure at once; a BUSY one
        changes nothing. ``uncounted`` counters (an unknown identity's) take slots like the
        others but never count a failure: the same work and the same limits as for an existing
        identity, so neither tells them apart, and no row is left behind once the slot is freed."""
        if not self.enabled or not keys:
            return Attempt()
        ordered = tuple(sorted(set(keys)))  # one lock order everywhere: two attempts never deadlock
        skip = frozenset(uncounted)
        rows = {key: self._lock(conn, key, now) for key in ordered}
        if any(row.locked_until > now for row in rows.values()):
            for key, row in rows.items():
                _store(conn, key, row if key in skip else row.failed(now, self._free_after(key, row)), now)
            return Attempt(Verdict.LOCKED, ordered, skip)
        if any(row.pending >= max(self._free_attempts(key) - row.failures, 1) for key, row in rows.items()):
            for key, row in rows.items():
                if row.empty(now):  # created just now by the upsert
                    _store(conn, key, row, now)
            return Attempt(Verdict.BUSY, ordered, skip)
        for key, row in rows.items():
            _store(conn, key, dataclasses.replace(row, pending=row.pending + 1), now)
        return Attempt(Verdict.GO, ordered, skip)

    def failed_sync(self, conn: Connection, attempt: Attempt, now: float) -> None:
        """The reserved attempt was a wrong password: its slot becomes a failure."""
        for key in _slots(attempt):
            row = self._lock(conn, key, now)
            row = dataclasses.replace(row, pending=max(row.pending - 1, 0))
            _store(conn, key, row if key in attempt.uncounted else row.failed(now, self._free_after(key, row)), now)

    def succeeded_sync(self, conn: Connection, attempt: Attempt, now: float) -> None:
        """The reserved attempt proved the password (inside the grant's transaction): its slot is
        given back, and the identity forgets its failures. The address keeps them: one valid
        account must not wash away an address's guesses at others."""
        for key in _slots(attempt):
            row = self._lock(conn, key, now)
            row = dataclasses.replace(row, pending=max(row.pending - 1, 0))
            if key.startswith(IDENTITY_PREFIX):
                row = dataclasses.replace(row, failures=0, locked_until=0.0)
            _store(conn, key, row, now)

    def released_sync(self, conn: Connection, attempt: Attempt, now: float) -> None:
        """The reserved attempt was abandoned before any verdict reached its caller: its slot is
        given back and nothing is counted (the caller learned nothing from it)."""
        for key in _slots(attempt):
            row = self._lock(conn, key, now)
            _store(conn, key, dataclasses.replace(row, pending=max(row.pending - 1, 0)), now)

    def record_failure_sync(self, conn: Connection, keys: Sequence[str], now: float) -> None:
        """Count a failure that needed no reservation (a failed client authentication)."""
        if self.enabled:
            for key in sorted(set(keys)):
                row = self._lock(conn, key, now)
                _store(conn, key, row.failed(now, self._free_after(key, row)), now)

    # --- the steps as coroutines: a transaction of their own, or one Redis script call ---------

    async def reserve(self, keys: Sequence[str], now: float, uncounted: Collection[str] = ()) -> Attempt:
        """:meth:`reserve_sync` on its own (the password grant calls reserve_sync inside its
        transaction when the counters are rows). Redis unreachable: :class:`Unavailable`."""
        if not self.enabled or not keys:
            return Attempt()
        if self.shared is None:
            return await self.store.run_write(self.reserve_sync, keys, now, uncounted)
        ordered = tuple(sorted(set(keys)))
        skip = frozenset(uncounted)
        verdict = await self._step("reserve", ordered, now, skip)
        return Attempt(Verdict(verdict), ordered, skip)

    async def record_failure(self, keys: Sequence[str], now: float) -> None:
        """:meth:`record_failure_sync` on its own."""
        if not self.enabled or not keys:
            return
        if self.shared is None:
            await self.store.run_write(self.record_failure_sync, keys, now)
        else:
            await self._step("record_failure", tuple(sorted(set(keys))), now, frozenset())

    async def finish(self, attempt: Attempt, now: float, *, success: bool) -> None:
        """:meth:`failed_sync` or :meth:`succeeded_sync` on its own, then :meth:`slot_freed`."""
        await self._settle("succeeded" if success else "failed", attempt, now)

    async def issued(self, attempt: Attempt, now: float) -> None:
        """The grant's transaction committed its tokens: with rows the slot was given back inside
        it (:meth:`succeeded_sync`); in Redis it is given back now."""
        if self.shared is None:
            self.slot_freed(attempt)
        else:
            await self._settle("succeeded", attempt, now)

    async def peek(self, key: str) -> _Counter | None:
        """``key``'s counter as stored (None: no counter), on either backend: for tests and
        diagnostics."""
        if self.shared is None:
            row = await self.store.run_read(counters.read_counter, key)
            values = None if row is None else {name: getattr(row, name) for name in _Counter.__slots__}
        else:
            values = await self.shared.read(key)
        if values is None:
            return None
        return _Counter(
            int(values["failures"]), values["last_failure_at"], values["locked_until"], int(values["pending"])
        )

    async def _settle(self, op: str, attempt: Attempt, now: float) -> None:
        """Turn ``attempt``'s slot into a verdict (``failed``, ``succeeded``, ``released``), then
        wake a waiter. In Redis, a verdict that cannot be recorded now is retried in the
        background (the answer the caller gets does not change): its slot stays held meanwhile."""
        if not _slots(attempt):
            return
        if self.shared is None:
            sync = {"failed": self.failed_sync, "succeeded": self.succeeded_sync, "released": self.released_sync}[op]
            await self.store.run_write(sync, attempt, now)
        else:
            try:
                await self._step(op, attempt.keys, now, attempt.uncounted)
            except Unavailable:
                self._retry_later(op, attempt, now)
                return
        self.slot_freed(attempt)

    def _retry_later(self, op: str, attempt: Attempt, now: float) -> None:
        async def retry() -> None:
            deadline = asyncio.get_running_loop().time() + PENDING_TTL_S
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(RETRY_S)
                try:
                    await self._step(op, attempt.keys, now, attempt.uncounted)
                except Unavailable:
                    continue
                self.slot_freed(attempt)
                return
            log.error("lockout verdict lost: Redis unreachable for the whole slot lifetime", extra={"verdict": op})

        task = asyncio.get_running_loop().create_task(retry(), name="lockout-retry-verdict")
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _step(self, op: str, keys: tuple[str, ...], now: float, uncounted: frozenset[str]) -> str:
        assert self.shared is not None
        return await self.shared.step(
            op,
            keys,
            now,
            free_attempts=[self._free_attempts(key) for key in keys],
            uncounted=uncounted,
            identities=[key for key in keys if key.startswith(IDENTITY_PREFIX)],
        )

    def settle_abandoned(
        self, attempt: Attempt, verification: asyncio.Future[bool], clock: Callable[[], float]
    ) -> None:
        """The caller of ``attempt`` gave up (gRPC deadline, client gone) while its password was
        being verified. The slot stays taken until the verification ends, so abandoned requests
        cannot run more argon2 verifications at once than the slots allow; then a wrong password
        counts as a failure (a guess, answered or not) and a right one gives the slot back
        without clearing the identity's failures (its caller learned nothing)."""

        async def settle() -> None:
            try:
                verified = await verification
            except Exception:
                verified = False
            await self._settle("released" if verified else "failed", attempt, clock())

        if not _slots(attempt):
            return
        task = asyncio.get_running_loop().create_task(settle(), name="lockout-settle-abandoned")
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    @property
    def freed(self) -> int:
        """How many slots attempts of this process have freed so far (see :meth:`wait_for_slot`)."""
        return self._freed

    async def wait_for_slot(self, attempt: Attempt, freed_before: int, poll_s: float) -> None:
        """Wait until an attempt of this process frees a slot on one of ``attempt``'s counters, or
        about ``poll_s`` passes (another replica's freed slots are seen only by asking again).

        ``freed_before`` is :attr:`freed` read before the reservation that said BUSY: a slot freed
        while that reservation ran would otherwise wake nobody. One waiter is woken per freed slot
        (first come, first served), so a burst does not stampede the database.
        """
        if self._freed != freed_before:
            return
        waiter = (frozenset(attempt.keys), asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter[1], poll_s * random.uniform(0.5, 1.5))  # noqa: S311 - jitter
        except TimeoutError:
            pass
        finally:
            self._waiters.remove(waiter)

    def slot_freed(self, attempt: Attempt) -> None:
        """Wake the first waiter on one of ``attempt``'s counters (after its verdict committed)."""
        self._freed += 1
        for keys, future in self._waiters:
            if not future.done() and not keys.isdisjoint(attempt.keys):
                future.set_result(None)
                return

    def _lock(self, conn: Connection, key: str, now: float) -> _Counter:
        """The counter of ``key`` as it stands now, row-locked until commit."""
        return _Counter.of(counters.lock_counter(conn, key, now), now, self.reset_s)

    def _free_after(self, key: str, row: _Counter) -> float:
        """The back-off after one more failure on ``row``."""
        return self.backoff_s(row.failures + 1, self._free_attempts(key))


def _store(conn: Connection, key: str, row: _Counter, now: float) -> None:
    """Write ``row`` back; an empty counter (no failure, no slot, no lock) is deleted instead."""
    if row.empty(now):
        counters.delete_counter(conn, key)
        return
    values = dataclasses.asdict(row)
    if row.pending:
        values["pending_until"] = now + PENDING_TTL_S
    counters.write_counter(conn, key, values)


def _slots(attempt: Attempt) -> tuple[str, ...]:
    """The counters on which ``attempt`` holds a slot: all of them when GO, none otherwise."""
    return attempt.keys if attempt.verdict is Verdict.GO else ()


@dataclass(frozen=True, slots=True)
class _Counter:
    """A counter as it stands now: failures forgotten after the quiet period, slots of dead
    processes (past ``pending_until``) dropped."""

    failures: int
    last_failure_at: float
    locked_until: float
    pending: int

    @classmethod
    def of(cls, row: Any, now: float, reset_s: float) -> _Counter:
        quiet = now - row.last_failure_at > reset_s
        return cls(
            failures=0 if quiet else row.failures,
            last_failure_at=row.last_failure_at,
            locked_until=row.locked_until,
            pending=row.pending if row.pending_until > now else 0,
        )

    def empty(self, now: float) -> bool:
        return self.failures == 0 and self.pending == 0 and self.locked_until <= now

    def failed(self, now: float, backoff_s: float) -> _Counter:
        """One more failure, now, locking for ``backoff_s`` (never shortening a running lock)."""
        return dataclasses.replace(
            self, failures=self.failures + 1, last_failure_at=now, locked_until=max(self.locked_until, now + backoff_s)
        )
