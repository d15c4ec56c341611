"""Brute-force protection: back-off then lockout, per identity and per address, no enumeration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.token_service.conftest import add_identity
from token_service.core import Core
from token_service.errors import CredentialsInvalid
from token_service.grants import create_token_with_password
from token_service.grants import password as password_grant
from token_service.lockout import PENDING_TTL_S, Lockout, Verdict, address_key, identity_key
from token_service.store import Store
from token_service.store.tables import lockouts
from token_service.testing import settings_for_tests

PASSWORD = "right-pass-1"


@pytest.fixture
async def core(db_url: str, counters_in: dict[str, Any]) -> AsyncIterator[Core]:
    """A started core whose counters are rows, then (same tests) in Redis."""
    core = Core.build(settings_for_tests(db_url, **counters_in))
    await core.start()
    yield core
    await core.close()


async def _attempt(core: Core, identity: str, password: str, address: str | None = None, namespace: str = "") -> str:
    try:
        await create_token_with_password(
            core, namespace=namespace, identity=identity, password=password, client_address=address
        )
    except CredentialsInvalid as exc:
        return exc.reason
    return "ok"


def test_backoff_doubles_after_free_attempts_up_to_max() -> None:
    """No delay for the free attempts, then base, 2×base, … capped at the maximum."""
    lockout = Lockout(
        settings_for_tests("sqlite:///x.db", lockout_free_attempts=3, lockout_base_s=1, lockout_max_s=5), None
    )  # type: ignore[arg-type]
    assert [lockout.backoff_s(n) for n in range(1, 8)] == [0, 0, 1, 2, 4, 5, 5]


async def _counter(core: Core, key: str) -> Any:
    """The stored counter of ``key`` (None: no counter), on either backend."""
    return await core.lockout.peek(key)


async def test_lockout_engages_at_threshold(core: Core) -> None:
    """After 5 failures the identity is locked: even the right password is CREDENTIALS_INVALID."""
    await add_identity(core, "alice", PASSWORD, ("a:b",))
    reasons = [await _attempt(core, "alice", "wrong") for _ in range(6)]
    assert reasons == ["wrong_password"] * 5 + ["locked_out"]
    row = await _counter(core, identity_key("", "alice"))
    assert row is not None and row.locked_until > time.time()
    assert await _attempt(core, "alice", PASSWORD) == "locked_out"
    async with core.store.read() as conn:
        rows = (await conn.execute(select(lockouts.c.key))).scalars().all()
    assert rows == ([identity_key("", "alice")] if core.lockout.in_database else [])  # Redis: no write at all


async def test_unknown_identities_leave_no_counter_behind(core: Core) -> None:
    """Guessed names create no lockout rows (each would stay forever); the caller's answer is the
    same CREDENTIALS_INVALID as a locked identity's. With a client address, only its row."""
    for i in range(8):
        assert await _attempt(core, f"ghost-{i}", "wrong") == "unknown_identity"
        assert await _attempt(core, "ghost", "wrong", address="203.0.113.7") == "unknown_identity"
    for name in ("ghost", *(f"ghost-{i}" for i in range(8))):
        assert await _counter(core, identity_key("", name)) is None
    address = await _counter(core, address_key("203.0.113.7"))
    assert address is not None and address.failures == 8
    if core.lockout.in_database:
        async with core.store.read() as conn:
            keys = (await conn.execute(select(lockouts.c.key))).scalars().all()
        assert keys == [address_key("203.0.113.7")]


async def test_lock_expires_and_success_clears_the_counter(core: Core) -> None:
    """Once the back-off has passed the right password works and the failures are forgotten."""
    await add_identity(core, "alice", PASSWORD, ("a:b",))
    for _ in range(5):
        await _attempt(core, "alice", "wrong")
    core.clock = lambda: time.time() + 2  # base back-off is 1 s
    assert await _attempt(core, "alice", PASSWORD) == "ok"
    assert await _attempt(core, "alice", "wrong") == "wrong_password"  # counting starts again


async def test_address_lockout_spans_identities(core: Core) -> None:
    """Failures from one client address against many identities lock that address."""
    await add_identity(core, "alice", PASSWORD, ("a:b",))
    for i in range(core.settings.lockout_address_free_attempts):
        await _attempt(core, f"user{i}", "guess", address="203.0.113.9")
    assert await _attempt(core, "alice", PASSWORD, address="203.0.113.9") == "locked_out"
    assert await _attempt(core, "alice", PASSWORD, address="198.51.100.1") == "ok"


async def test_disabled_lockout_never_locks(db_url: str) -> None:
    """NATIVE_IAM_LOCKOUT_ENABLED=false: failures never lock."""
    core = Core.build(settings_for_tests(db_url, lockout_enabled=False))
    await core.start()
    try:
        await add_identity(core, "alice", PASSWORD, ("a:b",))
        for _ in range(8):
            await _attempt(core, "alice", "wrong")
        assert await _attempt(core, "alice", PASSWORD) == "ok"
    finally:
        await core.close()


async def test_identity_keys_never_collide(core: Core) -> None:
    """Names may contain '/': ("a", "b/c") and ("a/b", "c") are two identities with two counters,
    and locking one leaves the other alone."""
    assert identity_key("a", "b/c") != identity_key("a/b", "c")
    assert identity_key("", "1:x/y") != identity_key("1:x", "y")
    await add_identity(core, "b/c", PASSWORD, ("a:b",), namespace="a")
    await add_identity(core, "c", PASSWORD, ("a:b",), namespace="a/b")
    for _ in range(6):
        await _attempt(core, "b/c", "wrong", namespace="a")
    assert await _attempt(core, "b/c", PASSWORD, namespace="a") == "locked_out"
    assert await _attempt(core, "c", PASSWORD, namespace="a/b") == "ok"


def test_ipv6_addresses_count_by_their_64() -> None:
    """A client rotating through its /64 stays on one counter; another /64 has its own."""
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9") == "address:2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("203.0.113.9") == "address:203.0.113.9"


async def test_counters_written_before_migration_0003_still_work(db_url: str) -> None:
    """A database at 0001 with an old-style counter ('identity:<ns>/<name>', no slot columns)
    upgrades, and logins and pruning go on (the old row is ignored, then pruned)."""
    from alembic import command
    from alembic.config import Config

    from token_service.prune import Pruner
    from token_service.store import db as store_db

    def upgrade_to_0001(sync_conn: Any) -> None:
        config = Config()
        config.set_main_option("script_location", str(store_db.MIGRATIONS))
        config.attributes["connection"] = sync_conn
        command.upgrade(config, "0001")
        sync_conn.exec_driver_sql(
            "INSERT INTO lockouts (key, failures, last_failure_at, locked_until) VALUES ('identity:/alice', 9, 0, 0)"
        )

    store = Store(db_url)
    async with store.engine.begin() as conn:
        await conn.run_sync(upgrade_to_0001)
    await store.close()
    core = Core.build(settings_for_tests(db_url))
    await core.start()  # migrates to the newest revision
    try:
        await add_identity(core, "alice", PASSWORD, ("a:b",))
        assert await _attempt(core, "alice", "wrong") == "wrong_password"
        assert await _attempt(core, "alice", PASSWORD) == "ok"
        assert (await Pruner(core.settings, core.store).prune()).lockouts == 1
    finally:
        await core.close()


async def _hold_slots(core: Core, key: str, pending: int) -> None:
    """Slots held by attempts in flight elsewhere (another replica, or one that died)."""
    for _ in range(pending):
        assert (await core.lockout.reserve([key], time.time())).verdict is Verdict.GO


async def test_attempt_waits_for_a_slot_and_is_refused_uncounted_when_none_frees(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every free slot in flight elsewhere: the right password waits, then is refused (busy), and
    counts no failure; once the slots' holders are gone (pending_until passed) it works."""
    monkeypatch.setattr(password_grant, "BUSY_WAIT_S", 0.3)
    await add_identity(core, "alice", PASSWORD, ("a:b",))
    key = identity_key("", "alice")
    await _hold_slots(core, key, core.settings.lockout_free_attempts)
    started = time.monotonic()
    assert await _attempt(core, "alice", PASSWORD) == "busy"
    assert time.monotonic() - started >= 0.3
    row = await _counter(core, key)
    assert row is not None and row.failures == 0
    core.clock = lambda: time.time() + PENDING_TTL_S + 1  # the holders died: their slots expired
    assert await _attempt(core, "alice", PASSWORD) == "ok"
    assert await _counter(core, key) is None  # the success left nothing behind


@pytest.mark.parametrize(("password", "failures"), [(PASSWORD, 0), ("wrong", 5)])
async def test_an_abandoned_attempt_is_settled_when_its_verification_ends(
    core: Core, monkeypatch: pytest.MonkeyPatch, password: str, failures: int
) -> None:
    """A caller that gives up while its password is verified (gRPC deadline, client gone): its slot
    stays taken until the verification ends (abandoned requests never run more verifications at
    once than the slots allow), then a wrong password counts as a failure and a right one gives
    the slot back uncounted. Before, the slot stayed taken for PENDING_TTL_S whatever happened, so
    a handful of abandoned requests locked the owner out meanwhile (seen in the bench smoke run:
    the admin's next grant waited 10 s and was refused 'busy')."""
    await add_identity(core, "alice", PASSWORD, ("a:b",))
    real_verify = core.passwords.verify
    gate, all_verifying = asyncio.Event(), asyncio.Event()
    verifying: list[int] = []

    async def held(hash_: str | None, guess: str) -> bool:
        verifying.append(1)
        if len(verifying) == 5:
            all_verifying.set()
        await gate.wait()
        return await real_verify(hash_, guess)

    monkeypatch.setattr(core.passwords, "verify", held)
    tasks = [asyncio.create_task(_attempt(core, "alice", password)) for _ in range(5)]
    await asyncio.wait_for(all_verifying.wait(), 10)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    held_row = await _counter(core, identity_key("", "alice"))
    assert held_row is not None and held_row.pending == 5  # still verifying: the slots stay taken
    gate.set()
    for _ in range(200):
        row = await _counter(core, identity_key("", "alice"))
        if row is None or row.pending == 0:
            break
        await asyncio.sleep(0.02)
    assert (0 if row is None else row.failures) == failures
    assert row is None or row.pending == 0
    monkeypatch.setattr(core.passwords, "verify", real_verify)
    if failures == 0:
        started = time.monotonic()
        assert await _attempt(core, "alice", PASSWORD) == "ok"
        assert time.monotonic() - started < password_grant.BUSY_WAIT_S
