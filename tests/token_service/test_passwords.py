"""argon2id hashing and verification off the event loop."""

from __future__ import annotations

import asyncio
import time

from token_service.passwords import Passwords


def test_hash_is_argon2id_with_configured_parameters() -> None:
    """The stored hash is an argon2id PHC string carrying m, t and p."""
    passwords = Passwords(memory_kib=1024, time_cost=2, parallelism=1)
    hashed = passwords.hash("correct horse")
    assert hashed.startswith("$argon2id$") and "m=1024,t=2,p=1" in hashed and "correct horse" not in hashed
    passwords.close()


async def test_verify_right_and_wrong_password() -> None:
    """verify() is True for the password and False for anything else."""
    passwords = Passwords(memory_kib=1024, time_cost=1)
    hashed = passwords.hash("correct horse")
    assert await passwords.verify(hashed, "correct horse")
    assert not await passwords.verify(hashed, "wrong horse")
    passwords.close()


async def test_missing_hash_verifies_dummy_and_fails() -> None:
    """No hash (unknown identity, disabled password) is False even for the dummy's own input."""
    passwords = Passwords(memory_kib=1024, time_cost=1)
    assert not await passwords.verify(None, "")
    passwords.close()


async def test_missing_hash_costs_as_much_as_a_real_one() -> None:
    """Unknown identity and wrong password take the same time (within noise): one argon2 each."""
    passwords = Passwords(memory_kib=8192, time_cost=2, workers=1)
    hashed = passwords.hash("pw")

    async def timed(stored: str | None) -> float:
        started = time.perf_counter()
        await passwords.verify(stored, "guess")
        return time.perf_counter() - started

    real, dummy = [], []
    for _ in range(9):  # interleaved, and the minimum: other processes share these cores
        real.append(await timed(hashed))
        dummy.append(await timed(None))
    assert 0.5 < min(dummy) / min(real) < 2.0, (real, dummy)
    passwords.close()


async def test_verify_does_not_block_the_event_loop() -> None:
    """While a slow verify runs, other coroutines keep getting scheduled."""
    passwords = Passwords(memory_kib=16384, time_cost=3, workers=1)
    hashed = passwords.hash("pw")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await passwords.verify(hashed, "pw")
    task.cancel()
    assert ticks >= 3
    passwords.close()
