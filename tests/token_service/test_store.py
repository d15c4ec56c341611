"""The store on SQLite and on a real PostgreSQL: migrations, feed sequence order, grant round trips."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from native_iam.oauth.v1 import feed_pb2
from tests.token_service.conftest import add_identity
from token_service.access import check_access
from token_service.core import Core
from token_service.errors import Unavailable
from token_service.grants import create_token_with_password, refresh_access_token
from token_service.store import Store, async_url
from token_service.store import revocations as feed_log
from token_service.store.tables import revocations, tokens


def test_async_url_maps_drivers() -> None:
    """SYSTEM_DB_URL's sqlite/postgresql forms map to aiosqlite/asyncpg."""
    assert async_url("sqlite:///./x.db") == "sqlite+aiosqlite:///./x.db"
    assert async_url("postgresql://u:p@h:5432/d") == "postgresql+asyncpg://u:p@h:5432/d"
    assert async_url("postgres://u@h/d") == "postgresql+asyncpg://u@h/d"


async def test_migrations_create_every_table_and_are_idempotent(db_url: str) -> None:
    """Running the migrations twice leaves the full schema (start-up runs them every time)."""
    store = Store(db_url)
    await store.migrate()
    await store.migrate()
    async with store.read() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert {
        "identities",
        "passwords",
        "policies",
        "tokens",
        "signing_keys",
        "revocations",
        "feed_counter",
        "lockouts",
    } <= names
    await store.close()


async def test_concurrent_event_writers_commit_in_sequence_order(core: Core) -> None:
    """Readers tailing `sequence > cursor` never see a gap: writers commit in sequence order."""
    writers, gaps = 12, []
    done = asyncio.Event()

    async def writer(i: int) -> None:
        async with core.store.write() as conn:
            await conn.run_sync(
                feed_log.append,
                [
                    feed_log.Event(
                        target=feed_pb2.TOKEN, reason=feed_pb2.TOKEN_DISABLED, jti=f"j{i}", expires_unix=2**31
                    )
                ],
                time.time(),
            )
            await asyncio.sleep(0.01 * (writers - i))  # later sequence numbers try to commit first

    async def tailer() -> None:
        cursor = 0
        while not done.is_set() or cursor < writers:
            async with core.store.read() as conn:
                seen = (
                    (
                        await conn.execute(
                            select(revocations.c.sequence).where(revocations.c.sequence > cursor).order_by("sequence")
                        )
                    )
                    .scalars()
                    .all()
                )
            expected = list(range(cursor + 1, cursor + 1 + len(seen)))
            if seen != expected:
                gaps.append((cursor, seen))
            cursor = seen[-1] if seen else cursor
            await asyncio.sleep(0.002)

    tail = asyncio.create_task(tailer())
    await asyncio.gather(*(writer(i) for i in range(writers)))
    done.set()
    await asyncio.wait_for(tail, 10)
    assert gaps == []


async def test_password_refresh_check_round_trip(core: Core) -> None:
    """Domain functions work end to end on this backend; the refresh token is stored only as a hash."""
    await add_identity(core, "svc", "pw-123456", ("orders:read",))
    issued = await create_token_with_password(core, namespace="", identity="svc", password="pw-123456")
    assert issued.refresh_token
    refreshed = await refresh_access_token(core, refresh_token=issued.refresh_token)
    granted = await check_access(core, access_token=refreshed.access_token, scopes=["orders:read"])
    assert granted.claims.sub == "svc"
    async with core.store.read() as conn:
        rows = (await conn.execute(select(tokens))).mappings().all()
    assert len(rows) == 3
    flat = " ".join(str(v) for row in rows for v in row.values())
    assert issued.refresh_token not in flat and issued.access_token not in flat


async def test_unreachable_database_is_unavailable() -> None:
    """A database that refuses connections raises Unavailable, not a driver error."""
    store = Store("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(Unavailable):
        async with store.read() as conn:
            await conn.execute(select(1))
    await store.close()


async def test_sqlite_writers_hold_a_file_lock_other_processes_queue_on(tmp_path: Path) -> None:
    """A SQLite write transaction holds <db>-writer.lock, so a second worker process's writer waits
    on it (woken at once) instead of sleeping in SQLite's busy handler."""
    import fcntl
    import os

    path = tmp_path / "w.db"
    store = Store(f"sqlite:///{path}")
    await store.migrate()

    def held_elsewhere(_conn: object) -> bool:
        fd = os.open(f"{path}-writer.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    try:
        assert await store.run_write(held_elsewhere) is True
    finally:
        await store.close()


async def test_sqlite_reads_see_every_commit_made_since_the_last_read(tmp_path: Path) -> None:
    """The loop's kept read connection ends each read transaction: the next read sees new commits."""
    from sqlalchemy import text

    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    await store.migrate()

    def count(conn: object) -> int:
        return int(conn.execute(text("SELECT count(*) FROM lockouts")).scalar_one())  # type: ignore[attr-defined]

    def add(conn: object, key: str) -> None:
        conn.execute(  # type: ignore[attr-defined]
            text("INSERT INTO lockouts (key, failures, last_failure_at, locked_until) VALUES (:k, 1, 0, 0)"),
            {"k": key},
        )

    try:
        assert await store.run_read(count) == 0
        await store.run_write(add, "a")
        assert await store.run_read(count) == 1
        await store.run_write(add, "b")
        assert await store.run_read(count) == 2
    finally:
        await store.close()


async def test_sqlite_failed_write_leaves_the_writer_usable(tmp_path: Path) -> None:
    """A write transaction that raises is rolled back, and the next one commits normally."""
    from sqlalchemy import text

    store = Store(f"sqlite:///{tmp_path / 'f.db'}")
    await store.migrate()

    def add(conn: object, key: str, fail: bool) -> None:
        conn.execute(  # type: ignore[attr-defined]
            text("INSERT INTO lockouts (key, failures, last_failure_at, locked_until) VALUES (:k, 1, 0, 0)"),
            {"k": key},
        )
        if fail:
            raise RuntimeError("boom")

    def keys(conn: object) -> list[str]:
        return [r[0] for r in conn.execute(text("SELECT key FROM lockouts ORDER BY key"))]  # type: ignore[attr-defined]

    try:
        with pytest.raises(RuntimeError):
            await store.run_write(add, "a", True)
        await store.run_write(add, "b", False)
        assert await store.run_read(keys) == ["b"]
    finally:
        await store.close()
