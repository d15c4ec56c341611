"""The real token service for the benchmarks: a ``native-iam token-service`` process on SQLite or
on PostgreSQL (pgserver wheel), with production argon2id parameters and a bootstrap admin whose
password grants the benchmarks use."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._stack import ROOT, Server, ready_or_stop, serving
from native_iam._procs import Process, free_port, native_iam_command
from token_service.testing import TEST_FEED_TOKEN

ISSUER = "http://token.bench.native-iam.local"
AUDIENCE = "native-iam"
IDENTITY = "bench-admin"  # the bootstrap admin: policy `iam:admin`
SCOPE = "iam:admin"
#: The benchmark client's own scope policy (client_credentials grant).
CLIENT_SCOPE = "bench:read"
#: The client the stand-in cluster's service account shop/frontend maps to (bench/_cluster.py).
WORKLOAD_CLIENT = "bench-workload"


@dataclass
class TokenService:
    server: Server
    grpc: str
    http: str
    password: str
    db: str  # "sqlite" or "postgresql"

    @property
    def pid(self) -> int:
        return self.server.pids[0]

    def stop(self) -> None:
        self.server.stop()


class Postgres:
    """One pgserver PostgreSQL for the run; :meth:`database` makes a fresh database on it."""

    def __init__(self) -> None:
        import pgserver

        self._dir = tempfile.mkdtemp(prefix="native-iam-bench-pg-")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            self._server: Any = pgserver.get_server(self._dir, cleanup_mode="delete")
        self.uri: str = self._server.get_uri()

    def database(self) -> str:
        import asyncpg

        name = "bench_" + secrets.token_hex(4)

        async def create() -> None:
            conn = await asyncpg.connect(self.uri)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(create())
        base, _, query = self.uri.partition("?")
        return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")

    def server_pids(self) -> list[int]:
        """PIDs of the postmaster (its backends are its children)."""
        pid_file = Path(self._dir) / "postmaster.pid"
        try:
            return [int(pid_file.read_text().split()[0])]
        except (OSError, ValueError, IndexError):
            return []

    def close(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._server.cleanup()


class Redis:
    """The run's redis-server (the Debian package ./dev installs) on a free loopback port, no
    persistence."""

    def __init__(self, workdir: Path) -> None:
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (./dev test installs it)")
        self.port = free_port()
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = Process("redis", argv, log_path=workdir / "redis.log", cwd=workdir).start()
        self.process.wait_port("127.0.0.1", self.port, timeout=20)

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def fresh(self) -> str:
        import redis

        with redis.Redis(port=self.port, socket_timeout=5) as client:
            client.flushall()
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.process.stop()


class Admin:
    """The token service's admin gRPC API, called as the bootstrap admin (scope ``iam:admin``)."""

    def __init__(self, service: TokenService) -> None:
        import grpc

        from native_iam.admin.v1 import admin_pb2_grpc
        from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc

        self._channel = grpc.insecure_channel(service.grpc)
        grant = oauth_pb2_grpc.OAuthStub(self._channel).CreateTokenWithPassword(
            oauth_pb2.CreateTokenWithPasswordRequest(identity=IDENTITY, password=service.password), timeout=30
        )
        if grant.status != grant.OK:
            raise RuntimeError(f"the bootstrap admin could not get a token: status {grant.status}")
        self._metadata = (("authorization", f"Bearer {grant.access_token}"),)
        self.tokens = admin_pb2_grpc.TokensStub(self._channel)
        self.clients = admin_pb2_grpc.ClientsStub(self._channel)

    def disable_token(self, jti: str) -> None:
        from native_iam.admin.v1 import admin_pb2

        self.tokens.SetTokenEnabled(
            admin_pb2.SetTokenEnabledRequest(jti=jti, enabled=False), metadata=self._metadata, timeout=30
        )

    def create_client(self, client_id: str) -> str:
        """A confidential client (client_secret_basic, password + refresh + client_credentials
        grants, no rotation, so that one refresh token can be replayed by the load generator; its
        own policy CLIENT_SCOPE, never the admin's); returns its secret."""
        from native_iam.admin.v1 import admin_pb2

        answer = self.clients.CreateClient(
            admin_pb2.CreateClientRequest(
                client_id=client_id,
                name="benchmark",
                token_endpoint_auth_method="client_secret_basic",
                grant_types=["password", "refresh_token", "client_credentials"],
                rotate_refresh_tokens=False,
                scopes=[CLIENT_SCOPE],
            ),
            metadata=self._metadata,
            timeout=30,
        )
        return str(answer.client_secret)

    def create_workload_client(self, client_id: str = WORKLOAD_CLIENT) -> None:
        """A client that authenticates with a Kubernetes service-account token (no secret) and
        may use the client_credentials grant, with the policy CLIENT_SCOPE."""
        from native_iam.admin.v1 import admin_pb2

        self.clients.CreateClient(
            admin_pb2.CreateClientRequest(
                client_id=client_id,
                name="benchmark workload",
                token_endpoint_auth_method="kubernetes_service_account",
                grant_types=["client_credentials"],
                scopes=[CLIENT_SCOPE],
            ),
            metadata=self._metadata,
            timeout=30,
        )

    def close(self) -> None:
        self._channel.close()


def start(
    workdir: Path, *, db_url: str, name: str = "token-service", env: dict[str, str] | None = None
) -> TokenService:
    grpc_address = f"127.0.0.1:{free_port()}"
    http_address = f"127.0.0.1:{free_port()}"
    password = secrets.token_urlsafe(16)
    environment = {
        "SYSTEM_DB_URL": db_url,
        "NATIVE_IAM_GRPC_LISTEN": grpc_address,
        "NATIVE_IAM_HTTP_LISTEN": http_address,
        "NATIVE_IAM_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        "NATIVE_IAM_ISSUER": ISSUER,
        "NATIVE_IAM_AUDIENCE": AUDIENCE,
        "NATIVE_IAM_BOOTSTRAP_ADMIN": IDENTITY,
        "NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD": password,
        "NATIVE_IAM_LOG_LEVEL": "WARNING",
        "NATIVE_IAM_LOG_FORMAT": "text",
        "NATIVE_IAM_FEED_TOKEN": TEST_FEED_TOKEN,
        **(env or {}),
    }
    process = Process(
        name, native_iam_command("token-service"), log_path=workdir / f"{name}.log", env=environment, cwd=workdir
    ).start()
    ready_or_stop(process, lambda: process.wait_until(lambda: serving(grpc_address), timeout=60, what="SERVING"))
    server = Server(name, grpc_address, [process])
    db = "postgresql" if db_url.startswith("postgres") else "sqlite"
    return TokenService(server=server, grpc=grpc_address, http=http_address, password=password, db=db)


__all__ = [
    "AUDIENCE",
    "IDENTITY",
    "ISSUER",
    "ROOT",
    "SCOPE",
    "WORKLOAD_CLIENT",
    "Admin",
    "Postgres",
    "Redis",
    "TokenService",
    "start",
]
