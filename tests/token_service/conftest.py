"""Fixtures for the token service: databases (SQLite and a real PostgreSQL), a core, a server.

PostgreSQL comes from the pgserver wheel, started once per session; each test that uses it gets
a fresh database. ``db_url`` is parametrized over both backends for the store tests.
Redis (SYSTEM_CACHE_URL) is a real redis-server on a free loopback port, started once per session
(no persistence) and emptied for each test that asks for ``redis_url``; a test may kill it and
start it again (:class:`RedisServer`). ``counters_in`` runs a test with the brute-force counters
in the database and then in Redis.
"""

from __future__ import annotations

import secrets
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from native_iam.oauth.v1 import feed_pb2_grpc, oauth_pb2_grpc
from token_service.admin import ensure_identity
from token_service.admin.clients import create_client
from token_service.app import TokenServiceApp
from token_service.clients import OAuthClient, new_client
from token_service.core import Core
from token_service.testing import settings_for_tests


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A PostgreSQL 16 server for the whole session (pgserver wheel)."""
    directory = tempfile.mkdtemp(prefix="native-iam-pg-")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        # A test dependency (./dev test installs it): missing is an error, never a silent skip.
        import pgserver

        server = pgserver.get_server(directory, cleanup_mode="stop")
    yield server
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server.cleanup()


async def _fresh_postgres_database(uri: str) -> str:
    name = "t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(uri)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, query = uri.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


class RedisServer:
    """A real redis-server on a free loopback port (no persistence), that a test may kill and
    start again on the same port (Redis down, then back)."""

    def __init__(self, directory: Path, *, appendonly: bool = False, password: str | None = None) -> None:
        from native_iam._procs import free_port

        self.directory = directory
        #: ``requirepass``: the URL carries it (``redis://:PASSWORD@…``).
        self.password = password
        #: Persist every write (AOF, fsync always) so a killed server restarts with its keys, as
        #: docs/token-service.md, Redis recommends for the brute-force counters; the shared server does not.
        self.appendonly = appendonly
        self.port = free_port()
        self.url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{self.port}/0"
        self.process: Any = None

    def start(self) -> None:
        from native_iam._procs import Process
        from tests.conftest import require_tool  # here: tests/conftest.py imports this module

        binary = require_tool("redis-server")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        argv += ["--requirepass", self.password] if self.password else []
        argv += ["--dir", str(self.directory)]
        self.process = Process("redis", argv, log_path=self.directory / "redis.log").start()
        self.process.wait_port("127.0.0.1", self.port, timeout=20)

    def kill(self) -> None:
        """SIGKILL: connections drop, every key is lost (as after a crash without persistence)."""
        if self.process is not None:
            self.process.kill()
            self.process = None

    def flush(self) -> None:
        import redis

        with redis.Redis(port=self.port, password=self.password, socket_timeout=5) as client:
            client.flushall()

    def contents(self) -> bytes:
        """Every key and value (strings and hashes), as text: what Redis holds at rest."""
        import redis

        lines = []
        with redis.Redis(port=self.port, password=self.password, socket_timeout=5) as client:
            for key in client.scan_iter():
                kind = client.type(key)
                value = client.hgetall(key) if kind == b"hash" else client.get(key) if kind == b"string" else kind
                lines.append(f"{key!r} {value!r}")
        return "\n".join(lines).encode()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the whole session (``./dev test`` installs the Debian package)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """SYSTEM_CACHE_URL of an empty Redis (running again if a test killed it)."""
    if redis_server.process is None:
        redis_server.start()
    redis_server.flush()
    yield redis_server.url
    if redis_server.process is None:
        redis_server.start()


@pytest.fixture
async def postgres_url(postgres_server: Any) -> str:
    """A new, empty PostgreSQL database on the session server."""
    return await _fresh_postgres_database(postgres_server.get_uri())


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'native-iam.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'native-iam.db'}"
    server = request.getfixturevalue("postgres_server")
    return await _fresh_postgres_database(server.get_uri())


@pytest.fixture
async def core(db_url: str) -> AsyncIterator[Core]:
    """A started core (migrated store, keys loaded) without any server."""
    core = Core.build(settings_for_tests(db_url))
    await core.start()
    yield core
    await core.close()


@pytest.fixture(params=["database", "redis"])
def counters_in(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides putting the brute-force counters in the database, then in Redis
    (SYSTEM_CACHE_URL; on SQLite only when the test also runs on PostgreSQL: Redis counters never
    touch the database), so the lockout suites run unchanged against both backends."""
    if request.param == "database":
        return {}
    if "db_url" in request.fixturenames and not str(request.getfixturevalue("db_url")).startswith("sqlite"):
        pytest.skip("Redis counters do not depend on the database")
    return {"cache_url": request.getfixturevalue("redis_url")}


@pytest.fixture
async def service(sqlite_url: str) -> AsyncIterator[TokenServiceApp]:
    """A running token service (gRPC on 127.0.0.1, SQLite)."""
    app = TokenServiceApp(settings_for_tests(sqlite_url))
    await app.start()
    yield app
    await app.stop(0)


@pytest.fixture
async def channel(service: TokenServiceApp) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(service.grpc_target) as channel:
        yield channel


@pytest.fixture
def oauth(channel: grpc.aio.Channel) -> oauth_pb2_grpc.OAuthStub:
    return oauth_pb2_grpc.OAuthStub(channel)


@pytest.fixture
def feed(channel: grpc.aio.Channel) -> feed_pb2_grpc.FeedStub:
    return feed_pb2_grpc.FeedStub(channel)


async def add_identity(
    core: Core, name: str, password: str | None = "s3cret-pass", policy: tuple[str, ...] = (), namespace: str = ""
) -> None:
    """Create an identity with a password and a policy (test helper)."""
    await ensure_identity(core, namespace, name, password, policy)


async def add_client(core: Core, client_id: str, **options: Any) -> tuple[OAuthClient, str | None]:
    """Register an OAuth client (``options``: :func:`token_service.clients.new_client`'s); the
    registered client and its secret (test helper)."""
    client, secret = new_client(client_id, server_key=core.client_secret_key, **options)
    return await create_client(core, client), secret
