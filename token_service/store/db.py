"""The database: engine from SYSTEM_DB_URL, migrations at start-up, transaction helpers.

``sqlite:///path`` runs embedded (WAL; one writer at a time, queued in-process so that writers
never spin in SQLite's busy handler; write transactions ``BEGIN IMMEDIATE`` so a read-then-write
grant cannot race a concurrent disable). ``postgresql://…`` runs on asyncpg.

Two ways in:

* :meth:`Store.run_write` / :meth:`Store.run_read` run a plain function on a sync connection as
  one transaction: on SQLite one hop to a dedicated thread using sqlite3 directly, on PostgreSQL
  ``run_sync`` on asyncpg. The hot paths (grants, CheckAccess, lockout) use these: on SQLite an
  aiosqlite transaction costs one thread hop per call, ten or more per grant.
* :meth:`Store.write` / :meth:`Store.read` hand out an ``AsyncConnection`` (admin, feed, clients).

Both paths share one in-process writer queue on SQLite. Connection failures become
:class:`~token_service.errors.Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, create_engine, delete, event, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import ColumnElement

from token_service.errors import Unavailable

__all__ = ["EVENTS_WRITTEN", "Store", "async_url", "delete_batch"]

#: Key in a connection's ``info`` set by a transaction that appended revocation events.
EVENTS_WRITTEN = "native_iam_events_written"

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
#: A transaction's body: a plain function of one sync Connection.
Work = Callable[[Connection], T]

MIGRATIONS = Path(__file__).with_name("migrations")
#: Key of the PostgreSQL advisory lock that serializes start-up work across replicas.
_STARTUP_LOCK = 0x6E617469  # "nati"


def async_url(url: str) -> str:
    """Map SYSTEM_DB_URL to the async driver SQLAlchemy needs."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    return url


class Store:
    """Owns the engine; hands out read and write transactions."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = async_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        kwargs: dict[str, Any] = {}
        if not self.is_sqlite:
            kwargs = {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        # SQLite allows one writer; queueing writers here is cheaper than SQLite's busy loop.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._sync_engine: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine.sync_engine)
            # The hot paths (grants, checks) run whole transactions as one call in a thread on
            # plain sqlite3: one thread hop per transaction instead of one per aiosqlite call.
            self._sync_engine = create_engine("sqlite:///" + (make_url(self.url).database or ""), pool_size=4)
            _configure_sqlite(self._sync_engine)
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
            # Several processes on one file (NATIVE_IAM_WORKERS) queue on an advisory file lock:
            # SQLite's own busy handler sleeps whole milliseconds between retries instead.
            database = make_url(self.url).database
            self._writer_lock_path = f"{database}-writer.lock" if database and database != ":memory:" else None
            self._writer_lock_fd: int | None = None
        self._writer_conn: Connection | None = None  # the writer thread's own (SQLite)
        self._reader_conn: Connection | None = None  # the event loop thread's own (SQLite)
        self._commit_listeners: list[Callable[[], None]] = []

    async def run_write(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, *args, **kwargs)`` (a plain function on a sync Connection) in one
        read-write transaction, committed when it returns. On SQLite that is one hop to the writer
        thread; on PostgreSQL it runs on asyncpg through ``run_sync``."""
        work = _bind(fn, args, kwargs)
        try:
            if self._writer is not None and self._write_lock is not None:
                loop = asyncio.get_running_loop()
                async with self._write_lock:
                    result, events = await loop.run_in_executor(self._writer, self._sqlite_write, work)
                if events:
                    self._notify()
                return result
            async with self.engine.connect() as conn:
                try:
                    async with conn.begin():
                        result = await conn.run_sync(work)
                except BaseException:
                    _forget_events(conn)
                    raise
                self._after_commit(conn)
                return result
        except (DBAPIError, OSError) as exc:
            _reraise_unavailable(exc)
            raise

    async def run_read(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, *args, **kwargs)`` in a read-only transaction (see :meth:`run_write`)."""
        work = _bind(fn, args, kwargs)
        try:
            if self._sync_engine is not None:
                # A WAL read of a few indexed rows never waits for the writer and takes tens of
                # microseconds: cheaper inline than the hop to a thread and back.
                return self._sqlite_read(work)
            async with self.engine.connect() as conn:
                return await conn.run_sync(work)
        except (DBAPIError, OSError) as exc:
            _reraise_unavailable(exc)
            raise

    def _sqlite_write(self, work: Work[T]) -> tuple[T, bool]:
        assert self._sync_engine is not None
        if self._writer_lock_path is None:
            return self._sqlite_write_locked(work)
        if self._writer_lock_fd is None:
            self._writer_lock_fd = os.open(self._writer_lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._writer_lock_fd, fcntl.LOCK_EX)  # blocks this writer thread only
        try:
            return self._sqlite_write_locked(work)
        finally:
            fcntl.flock(self._writer_lock_fd, fcntl.LOCK_UN)

    def _sqlite_write_locked(self, work: Work[T]) -> tuple[T, bool]:
        assert self._sync_engine is not None
        # The writer thread keeps one connection: checking one out of the pool per transaction
        # cost as much as the transaction's own statements.
        conn = self._writer_conn
        if conn is None:
            conn = self._writer_conn = self._sync_engine.connect().execution_options(sqlite_begin="IMMEDIATE")
        try:
            with conn.begin():
                result = work(conn)
        except BaseException:
            self._writer_conn = None  # start the next transaction on a clean connection
            with contextlib.suppress(Exception):
                conn.close()
            raise
        finally:
            events = bool(conn.info.pop(EVENTS_WRITTEN, False)) if not conn.closed else False
        return result, events

    def _sqlite_read(self, work: Work[T]) -> T:
        assert self._sync_engine is not None
        # Only the event loop's thread reads here, so it keeps one connection too; the rollback
        # ends the read transaction, so the next read sees every commit made meanwhile.
        conn = self._reader_conn
        if conn is None:
            conn = self._reader_conn = self._sync_engine.connect()
        try:
            return work(conn)
        except BaseException:
            self._reader_conn = None
            with contextlib.suppress(Exception):
                conn.close()
            raise
        finally:
            if not conn.closed:
                conn.rollback()

    def _notify(self) -> None:
        for listener in self._commit_listeners:
            listener()

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each committed write transaction that appended feed events."""
        self._commit_listeners.append(listener)

    def remove_commit_listener(self, listener: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._commit_listeners.remove(listener)

    def _after_commit(self, conn: AsyncConnection) -> None:
        if conn.info.pop(EVENTS_WRITTEN, False):
            self._notify()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (rolled back at the end)."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except (DBAPIError, OSError) as exc:
            _reraise_unavailable(exc)
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction, committed when the block exits without an exception."""
        try:
            # SQLite: one writer at a time in this process, and BEGIN IMMEDIATE takes the file's
            # write lock up front rather than failing at the first write.
            async with self._write_lock or contextlib.nullcontext(), self.engine.connect() as conn:
                if self._write_lock is not None:
                    conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
                try:
                    async with conn.begin():
                        yield conn
                except BaseException:
                    _forget_events(conn)
                    raise
                self._after_commit(conn)
        except (DBAPIError, OSError) as exc:
            _reraise_unavailable(exc)
            raise

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (run at start-up, safe with several replicas)."""
        if self.is_sqlite:
            path = make_url(self.url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                # Replicas starting together: one migrates, the others wait (released at commit).
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _STARTUP_LOCK})
            await conn.run_sync(_upgrade)

    @asynccontextmanager
    async def startup_lock(self) -> AsyncIterator[None]:
        """Serialize start-up work (key generation, bootstrap) across replicas on PostgreSQL."""
        if self.is_sqlite:
            yield
            return
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _STARTUP_LOCK})
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _STARTUP_LOCK})
                await conn.commit()

    async def ping(self) -> bool:
        try:
            async with self.read() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Unavailable:
            return False

    async def close(self) -> None:
        await self.engine.dispose()
        if self._writer is not None:
            if self._writer_conn is not None:
                self._writer.submit(self._writer_conn.close).result()
                self._writer_conn = None
            self._writer.shutdown(wait=True)
        if self._reader_conn is not None:
            self._reader_conn.close()
            self._reader_conn = None
        if self.is_sqlite and self._writer_lock_fd is not None:
            os.close(self._writer_lock_fd)
            self._writer_lock_fd = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()


def _bind(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Work[T]:
    """``fn`` with its arguments after the connection, as one transaction body."""
    if not args and not kwargs:
        return fn
    return lambda conn: fn(conn, *args, **kwargs)


def _upgrade(sync_conn: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = sync_conn
    # "heads": the OAuth clients migration (0100) is its own branch off the core's sequence, so a
    # later core migration never has to know about it (and two heads never block start-up).
    command.upgrade(config, "heads")


def _configure_sqlite(sync_engine: Engine) -> None:

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that "begin" below decides.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


#: SQLSTATEs meaning "the server cannot serve now" (PostgreSQL, Appendix A): class 08 connection
#: exceptions; 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now (the server
#: is stopping or starting).
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def _forget_events(conn: AsyncConnection) -> None:
    """Drop the "events written" mark of a rolled-back transaction. An invalidated connection
    (the database went away) is left alone: touching its ``info`` would try to reconnect."""
    if not conn.invalidated:
        with contextlib.suppress(Exception):
            conn.info.pop(EVENTS_WRITTEN, None)


def _reraise_unavailable(exc: BaseException) -> None:
    """Turn "the database is unreachable" into :class:`Unavailable`; leave real bugs alone."""
    if isinstance(exc, OSError | OperationalError):
        raise Unavailable() from exc
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated
        or isinstance(exc.orig, OSError)
        or "connection" in type(exc.orig).__name__.lower()
        or "cannotconnect" in type(exc.orig).__name__.lower()
        # SQLAlchemy's asyncpg adapter wraps every server error in one generic class: go by SQLSTATE.
        or str(getattr(exc.orig, "sqlstate", None) or "").startswith(_UNAVAILABLE_SQLSTATES)
    ):
        raise Unavailable() from exc


def delete_batch(
    conn: Connection, table: Table, key: ColumnElement[Any], condition: ColumnElement[bool], batch: int
) -> int:
    """Delete up to ``batch`` rows of ``table`` matching ``condition`` (a LIMIT in a subquery
    works on both stores); how many.

    ``condition`` is repeated outside the subquery: PostgreSQL re-checks only the outer WHERE on
    a row that a concurrent transaction updated meanwhile (a lockout counter that just failed
    again must stay).
    """
    doomed = select(key).where(condition).limit(batch).scalar_subquery()
    return int(conn.execute(delete(table).where(key.in_(doomed), condition)).rowcount)
