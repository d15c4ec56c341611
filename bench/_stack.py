"""Start the servers a scenario needs (canned ext_authz, fake feed, sidecar, token service) and
talk to them directly (gRPC health, one Check)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from envoy.config.core.v3 import address_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import _tokens
from native_iam._procs import Process, free_port, native_iam_command
from token_service.testing import TEST_FEED_TOKEN

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    """One logical server: one or more processes sharing ``address``."""

    name: str
    address: str
    processes: list[Process] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def ready_or_stop(process: Process, wait: Callable[[], None]) -> None:
    """Run ``wait`` (a readiness wait); if it fails, stop ``process`` before re-raising, so that a
    failed start never leaves a server behind."""
    try:
        wait()
    except BaseException:
        process.stop()
        raise


def _python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def serving(address: str, timeout: float = 0.5) -> bool:
    """True when the gRPC health service at ``address`` says SERVING for the whole server."""
    try:
        with grpc.insecure_channel(address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
            return answer.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def check_request(token: str | None, *, scope: str = _tokens.SCOPE, path: str = "/") -> external_auth_pb2.CheckRequest:
    """The CheckRequest Envoy sends for ``GET path`` with ``token`` on a route requiring ``scope``."""
    headers = {":method": "GET", ":path": path, ":authority": "bench", "user-agent": "bench"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        id="1", method="GET", path=path, host="bench", scheme="http", protocol="HTTP/1.1", headers=headers
    )
    return external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            request=attribute_context_pb2.AttributeContext.Request(http=http),
            context_extensions={"scopes": scope},
            source=attribute_context_pb2.AttributeContext.Peer(
                address=address_pb2.Address(
                    socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=40000)
                )
            ),
        )
    )


def check(address: str, request: external_auth_pb2.CheckRequest) -> external_auth_pb2.CheckResponse:
    with grpc.insecure_channel(address) as channel:
        return external_auth_pb2_grpc.AuthorizationStub(channel).Check(request, timeout=5)


def sidecar_server_defaults() -> tuple[str, int]:
    """The sidecar's default ext_authz server kind and thread count, so that the canned floor runs
    the same grpcio server as the sidecar."""
    try:
        from sidecar.settings import Settings

        d = Settings()
        return str(getattr(d, "authz_server", "aio")), int(getattr(d, "authz_threads", 16))
    except ImportError:
        return "aio", 16


def start_canned(workdir: Path, *, processes: int, mode: str = "sync", threads: int = 16) -> Server:
    address = f"127.0.0.1:{free_port()}"
    server = Server(f"canned-{mode}x{processes}", address)
    for i in range(processes):
        argv = _python_module("bench.canned_authz", "--listen", address, "--mode", mode, "--threads", str(threads))
        process = Process(f"canned-{i}", argv, log_path=workdir / f"canned-{i}.log", cwd=ROOT).start()
        server.processes.append(process)
        answers = _answers_http if mode in ("http", "uvicorn") else _answers
        try:
            process.wait_until(lambda answers=answers: answers(address), timeout=30, what="answering Check")
        except BaseException:
            server.stop()
            raise
    return server


def _answers(address: str) -> bool:
    try:
        check(address, check_request(None))
    except grpc.RpcError:
        return False
    return True


def _answers_http(address: str) -> bool:
    """The HTTP floor answers a request (any status)."""
    import http.client

    try:
        connection = http.client.HTTPConnection(address, timeout=1)
        connection.request("GET", "/")
        connection.getresponse().read()
        connection.close()
    except OSError:
        return False
    return True


def start_fake_feed(workdir: Path, jwks_json: str, *, revoked: int = 0, name: str = "fake-feed") -> Server:
    jwks = workdir / f"{name}-jwks.json"
    jwks.write_text(jwks_json)
    address = f"127.0.0.1:{free_port()}"
    argv = _python_module("bench.fake_feed", "--listen", address, "--jwks-file", str(jwks), "--revoked", str(revoked))
    process = Process(name, argv, log_path=workdir / f"{name}.log", cwd=ROOT).start()
    host, port = address.rsplit(":", 1)
    ready_or_stop(process, lambda: process.wait_port(host, int(port), timeout=120))
    return Server(name, address, [process])


def start_sidecar(
    workdir: Path,
    *,
    token_url: str,
    workers: int,
    issuer: str = _tokens.ISSUER,
    audience: str = _tokens.AUDIENCE,
    name: str = "sidecar",
    env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
) -> tuple[Server, float]:
    """Start ``native-iam sidecar``; returns it and the seconds it took to report SERVING (keys
    loaded and the revocation feed synced). ``extra["http"]``: its HTTP ext_authz transport."""
    address = f"127.0.0.1:{free_port()}"
    http_address = f"127.0.0.1:{free_port()}"
    environment = {
        "NATIVE_IAM_AUTHZ_HTTP_LISTEN": http_address,
        "NATIVE_IAM_TOKEN_URL": token_url,
        "NATIVE_IAM_ISSUER": issuer,
        "NATIVE_IAM_ACCEPTED_AUDIENCES": audience,
        "NATIVE_IAM_AUTHZ_LISTEN": address,
        "NATIVE_IAM_OAUTH_LISTEN": f"127.0.0.1:{free_port()}",
        "NATIVE_IAM_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        "NATIVE_IAM_WORKERS": str(workers),
        "NATIVE_IAM_LOG_LEVEL": "WARNING",
        "NATIVE_IAM_LOG_FORMAT": "text",
        "NATIVE_IAM_FEED_TOKEN": TEST_FEED_TOKEN,
        **(env or {}),
    }
    started = time.monotonic()
    process = Process(
        name, native_iam_command("sidecar"), log_path=workdir / f"{name}.log", env=environment, cwd=ROOT
    ).start()
    ready_or_stop(process, lambda: process.wait_until(lambda: serving(address), timeout=ready_timeout, what="SERVING"))
    elapsed = time.monotonic() - started
    metrics = environment["NATIVE_IAM_METRICS_LISTEN"]
    server = Server(f"{name}x{workers}", address, [process], extra={"metrics": metrics, "http": http_address})
    return server, elapsed


def sidecar_available() -> bool:
    return (ROOT / "sidecar" / "cli.py").exists()


def token_service_available() -> bool:
    return (ROOT / "token_service" / "cli" / "main.py").exists()
