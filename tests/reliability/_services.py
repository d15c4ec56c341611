"""Real ``native-iam token-service`` and ``native-iam sidecar`` processes that a test can kill and
restart on the same ports (fault injection), built on :class:`native_iam._procs.Process`.

Shared by tests/reliability (faults) and tests/security (logs and secrets at rest): each process
writes its log to a file the test can read afterwards. Envoy and the echo upstream come from
tests/sidecar/_stack.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from native_iam._procs import Process, free_port, native_iam_command
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.sidecar._stack import serving
from token_service.testing import TEST_FEED_TOKEN

ISSUER = "http://token-service.reliability.test"
ADMIN = "admin"
ADMIN_PASSWORD = "Adm1n-pass-for-reliability"


def _ports_serving(address: str) -> bool:
    return serving(int(address.rpartition(":")[2]))


@dataclass
class TokenService:
    """One token-service process on fixed ports; :meth:`kill` and :meth:`start` again keep them."""

    workdir: Path
    db_url: str
    name: str = "token-service"
    env: Mapping[str, str] = field(default_factory=dict)
    grpc_address: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    http_address: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    process: Process | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.http_address}"

    def start(self, timeout: float = 60.0) -> TokenService:
        environment = {
            "SYSTEM_DB_URL": self.db_url,
            "NATIVE_IAM_GRPC_LISTEN": self.grpc_address,
            "NATIVE_IAM_HTTP_LISTEN": self.http_address,
            "NATIVE_IAM_METRICS_LISTEN": "off",
            "NATIVE_IAM_ISSUER": ISSUER,
            "NATIVE_IAM_BOOTSTRAP_ADMIN": ADMIN,
            "NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "NATIVE_IAM_FEED_HEARTBEAT_S": "0.5",
            "NATIVE_IAM_FEED_POLL_S": "0.05",
            "NATIVE_IAM_KEY_PUBLISH_DELAY_S": "0",
            "NATIVE_IAM_ARGON2_MEMORY_KIB": "256",
            "NATIVE_IAM_ARGON2_TIME_COST": "1",
            "NATIVE_IAM_SHUTDOWN_GRACE_S": "0.5",
            "NATIVE_IAM_FEED_TOKEN": TEST_FEED_TOKEN,
            **self.env,
        }
        self.process = Process(
            self.name, native_iam_command("token-service"), log_path=self.workdir / f"{self.name}.log", env=environment
        ).start()
        self.process.wait_until(lambda: _ports_serving(self.grpc_address), timeout=timeout, what="SERVING")
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log(self) -> str:
        return (self.workdir / f"{self.name}.log").read_text(errors="replace")

    def password_grant(
        self, identity: str, password: str, *, namespace: str = "", scopes: tuple[str, ...] = ()
    ) -> oauth_pb2.CreateTokenWithPasswordResponse:
        with grpc.insecure_channel(self.grpc_address) as channel:
            return oauth_pb2_grpc.OAuthStub(channel).CreateTokenWithPassword(
                oauth_pb2.CreateTokenWithPasswordRequest(
                    namespace=namespace, identity=identity, password=password, scopes=scopes
                ),
                timeout=10,
            )

    def check_access(self, token: str, scopes: tuple[str, ...] = ("orders:read",)) -> int:
        """The status of the token service's own CheckAccess."""
        with grpc.insecure_channel(self.grpc_address) as channel:
            request = oauth_pb2.CheckAccessRequest(access_token=token, scopes=scopes)
            return oauth_pb2_grpc.OAuthStub(channel).CheckAccess(request, timeout=10).status

    def admin(self, service: str, token: str) -> tuple[Any, tuple[tuple[str, str], ...]]:
        """An admin stub (``Identities``, ``Tokens``, …) on a fresh channel, and the bearer metadata."""
        from native_iam.admin.v1 import admin_pb2_grpc

        channel = grpc.insecure_channel(self.grpc_address)
        return getattr(admin_pb2_grpc, f"{service}Stub")(channel), (("authorization", f"Bearer {token}"),)

    def create_identity(self, token: str, namespace: str, name: str, password: str, policy: tuple[str, ...]) -> None:
        from native_iam.admin.v1 import admin_pb2

        stub, metadata = self.admin("Identities", token)
        stub.CreateIdentity(
            admin_pb2.CreateIdentityRequest(namespace=namespace, name=name, password=password, policy=policy),
            metadata=metadata,
            timeout=10,
        )

    def create_client(self, token: str, client_id: str, **fields: Any) -> str:
        """Register an OAuth client through the admin API; its secret ('' for a public client)."""
        from native_iam.admin.v1 import admin_pb2

        stub, metadata = self.admin("Clients", token)
        request = admin_pb2.CreateClientRequest(client_id=client_id, **fields)
        return str(stub.CreateClient(request, metadata=metadata, timeout=10).client_secret)

    def admin_token(self, timeout: float = 20.0) -> str:
        """An iam:admin access token of the bootstrap admin (created just after SERVING: retry)."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.password_grant(ADMIN, ADMIN_PASSWORD, scopes=("iam:admin",))
            if response.status == oauth_pb2.CreateTokenWithPasswordResponse.OK:
                return response.access_token
            if time.monotonic() > deadline:
                raise AssertionError(f"no admin token: {response}")
            time.sleep(0.2)


@dataclass
class Sidecar:
    """One ``native-iam sidecar`` process (one worker) on fixed ports, restartable."""

    workdir: Path
    token_url: str
    env: Mapping[str, str] = field(default_factory=dict)
    name: str = "sidecar"
    authz_port: int = field(default_factory=free_port)
    oauth_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: Process | None = None

    def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> Sidecar:
        environment = {
            "NATIVE_IAM_TOKEN_URL": self.token_url,
            "NATIVE_IAM_ISSUER": ISSUER,
            "NATIVE_IAM_AUTHZ_LISTEN": f"127.0.0.1:{self.authz_port}",
            "NATIVE_IAM_OAUTH_LISTEN": f"127.0.0.1:{self.oauth_port}",
            "NATIVE_IAM_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}",
            "NATIVE_IAM_FEED_TOKEN": TEST_FEED_TOKEN,
            **self.env,
        }
        self.process = Process(
            self.name, native_iam_command("sidecar"), log_path=self.workdir / f"{self.name}.log", env=environment
        ).start()
        if wait_ready:
            self.process.wait_until(lambda: serving(self.authz_port), timeout=timeout, what="SERVING")
        return self

    def ready(self) -> bool:
        return serving(self.authz_port)

    def check(self, token: str, path: str = "/orders/1") -> int:
        """ext_authz Check straight at the sidecar: the HTTP status Envoy would answer (200 = allowed)."""
        from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

        request = external_auth_pb2.CheckRequest()
        http = request.attributes.request.http
        http.method, http.path = "GET", path
        http.headers["authorization"] = f"Bearer {token}"
        with grpc.insecure_channel(f"127.0.0.1:{self.authz_port}") as channel:
            response = external_auth_pb2_grpc.AuthorizationStub(channel).Check(request, timeout=5)
        return 200 if response.status.code == 0 else response.denied_response.status.code

    def check_access(self, token: str, scopes: tuple[str, ...] = ("orders:read",)) -> int:
        """The status of the sidecar's OAuth facade CheckAccess (answered locally, like Check)."""
        with grpc.insecure_channel(f"127.0.0.1:{self.oauth_port}") as channel:
            request = oauth_pb2.CheckAccessRequest(access_token=token, scopes=scopes)
            return oauth_pb2_grpc.OAuthStub(channel).CheckAccess(request, timeout=5).status

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def log(self) -> str:
        return (self.workdir / f"{self.name}.log").read_text(errors="replace")

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """One sample from the sidecar's /metrics (None when absent)."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            metric, _, rest = key.partition("{")
            if metric == name and ",".join(sorted(rest.rstrip("}").split(","))) == wanted:
                return float(value)
        return None


def json_lines(text: str) -> list[dict[str, object]]:
    """The JSON log records in a log file's text (other lines skipped)."""
    records = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records
