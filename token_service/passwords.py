"""Password hashing with argon2id, verified off the event loop in constant-looking time.

An unknown identity, a disabled password and a locked-out identity are all verified against a
dummy hash made with the same parameters, so a caller cannot tell them from a wrong password by
the response time (the seed's CREDENTIALS_INVALID is one status for all of them).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["Passwords"]


class Passwords:
    """Hashes and verifies passwords; owns the thread pool verification runs in."""

    def __init__(self, memory_kib: int = 19456, time_cost: int = 2, parallelism: int = 1, workers: int = 0) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, hash_len=32, salt_len=16, type=Type.ID
        )
        # argon2-cffi releases the GIL, so one thread per core verifies in parallel; more would
        # only queue inside the kernel and cost memory_kib each.
        self.workers = workers or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="argon2")
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    @property
    def parameters(self) -> str:
        p = self.hasher
        return f"argon2id m={p.memory_cost} KiB, t={p.time_cost}, p={p.parallelism}"

    def hash(self, password: str) -> str:
        """The argon2id PHC string of ``password`` (blocking; used by admin calls and bootstrap)."""
        return self.hasher.hash(password)

    async def hash_async(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash``; ``None`` verifies a dummy and returns False."""
        target = stored_hash if stored_hash is not None else self._dummy_hash
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(self._executor, self._verify, target, password)
        return ok and stored_hash is not None

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
