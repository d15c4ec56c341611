"""Brute-force protection: back-off then lockout, per identity and per address, no enumeration."""

from __future__ import annotations

import time

import pytest

from tests.token_service.conftest import add_identity
from token_service.core import Core
from token_service.errors import CredentialsInvalid
from token_service.grants import create_token_with_password
from token_service.lockout import Lockout
from token_service.testing import settings_for_tests

PASSWORD = "right-pass-1"


async def _attempt(core: Core, identity: str, password: str, address: str | None = None) -> str:
    try:
        await create_token_with_password(
            core, namespace="", identity=identity, password=password, client_address=address
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


@pytest.mark.parametrize("identity", ["alice", "ghost"], ids=["existing", "unknown"])
async def test_lockout_engages_at_threshold_the_same_for_unknown_identities(core: Core, identity: str) -> None:
    """After 5 failures the identity is locked: even the right password is CREDENTIALS_INVALID,
    and an unknown identity goes through exactly the same states (no enumeration)."""
    await add_identity(core, "alice", PASSWORD, ("a:b",))
    reasons = [await _attempt(core, identity, "wrong") for _ in range(6)]
    expected = "wrong_password" if identity == "alice" else "unknown_identity"
    assert reasons == [expected] * 5 + ["locked_out"]
    assert await core.lockout.locked([f"identity:/{identity}"]) is not None
    assert await _attempt(core, identity, PASSWORD) == "locked_out"


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
    for i in range(5):
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
