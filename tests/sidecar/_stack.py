"""Processes for the end-to-end tests: the sidecar (``native-iam sidecar``), Envoy, an echo upstream;
and :func:`in_process_sidecar`, a sidecar worker in the test's own event loop.

Everything binds 127.0.0.1 ports picked at start; every process is stopped by the fixture that
started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from token_service.testing import TEST_FEED_TOKEN

if TYPE_CHECKING:
    from sidecar.server import Sidecar

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "envoy" / "envoy.yaml"
#: The same routes over ext_authz's HTTP protocol (the sidecar's NATIVE_IAM_AUTHZ_HTTP_LISTEN).
EXAMPLE_HTTP = ROOT / "examples" / "envoy" / "envoy-http.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


class Echo(BaseHTTPRequestHandler):
    """Answers 200 with a JSON echo of the headers that reached the workload."""

    def _answer(self) -> None:
        body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def echo_upstream(handler: type[BaseHTTPRequestHandler] = Echo) -> Iterator[int]:
    """An HTTP server on a free loopback port answering with ``handler`` (default :class:`Echo`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


class Proc:
    def __init__(self, argv: list[str], log: Path, env: Mapping[str, str] | None = None) -> None:
        self.log = log
        self._file = log.open("wb")
        self.popen = subprocess.Popen(
            argv, stdout=self._file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def wait(self, predicate, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"process exited before {what}:\n{self.tail()}")
            if predicate():
                return
            time.sleep(0.05)
        raise RuntimeError(f"not {what} after {timeout} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._file.close()


def serving(port: int) -> bool:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
        return response.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


@contextlib.contextmanager
def sidecar(tmp: Path, env: Mapping[str, str], *, wait_ready: bool = True) -> Iterator[dict[str, int]]:
    """``native-iam sidecar`` as a subprocess; yields its ports once it reports SERVING (``authz_http``:
    the HTTP transport, on in every test sidecar)."""
    ports = {"authz": free_port(), "authz_http": free_port(), "oauth": free_port(), "metrics": free_port()}
    full_env = {
        "NATIVE_IAM_AUTHZ_LISTEN": f"127.0.0.1:{ports['authz']}",
        "NATIVE_IAM_AUTHZ_HTTP_LISTEN": f"127.0.0.1:{ports['authz_http']}",
        "NATIVE_IAM_OAUTH_LISTEN": f"127.0.0.1:{ports['oauth']}",
        "NATIVE_IAM_METRICS_LISTEN": f"127.0.0.1:{ports['metrics']}",
        "NATIVE_IAM_LOG_FORMAT": "text",
        "NATIVE_IAM_FEED_TOKEN": TEST_FEED_TOKEN,
        **env,
    }
    proc = Proc([sys.executable, "-m", "native_iam.cli", "sidecar"], tmp / f"sidecar-{ports['authz']}.log", full_env)
    try:
        if wait_ready:
            proc.wait(lambda: serving(ports["authz"]), "serving")
        yield ports
    finally:
        proc.stop()


def envoy_config(tmp: Path, *, listen: int, authz: int, upstream: int, source: Path = EXAMPLE) -> Path:
    """The example Envoy config with this test's ports (``authz``: the sidecar port that ``source`` calls)."""
    text = source.read_text()
    text = text.replace("port_value: 10000", f"port_value: {listen}")
    text = text.replace("port_value: 9191", f"port_value: {authz}")
    text = text.replace("port_value: 9193", f"port_value: {authz}").replace(":9193", f":{authz}")
    text = text.replace("port_value: 8080", f"port_value: {upstream}")
    text = re.sub(r"address: 0\.0\.0\.0", "address: 127.0.0.1", text)
    path = tmp / f"envoy-{listen}.yaml"
    path.write_text(text)
    return path


def local_envoy_config(
    config: dict[str, Any], ports: Mapping[str, int], upstreams: Mapping[str, int]
) -> dict[str, Any]:
    """A parsed Envoy config with its admin (``ports["admin"]``) and listeners (``ports[name]``) on loopback
    ports and each cluster pointed at ``upstreams[name]`` (``envoy_admin`` at the admin port)."""
    if "admin" in config:
        config["admin"]["address"]["socket_address"].update(address="127.0.0.1", port_value=ports["admin"])
    for listener in config["static_resources"]["listeners"]:
        listener["address"]["socket_address"].update(address="127.0.0.1", port_value=ports[listener["name"]])
    for cluster in config["static_resources"]["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                address = endpoint["endpoint"]["address"]["socket_address"]
                address["port_value"] = (
                    ports["admin"] if cluster["name"] == "envoy_admin" else upstreams[cluster["name"]]
                )
    return config


@contextlib.contextmanager
def envoy(envoy_bin: str, config: Path, listen: int) -> Iterator[str]:
    argv = [envoy_bin, "-c", str(config), "--concurrency", "1", "--disable-hot-restart", "-l", "warning"]
    argv += ["--file-flush-interval-msec", "100"]  # access logs readable at once, not after 10 s
    proc = Proc(argv, config.with_suffix(".log"))
    try:
        proc.wait(lambda: port_open(listen), "listening")
        yield f"http://127.0.0.1:{listen}"
    finally:
        proc.stop()


@contextlib.asynccontextmanager
async def in_process_sidecar(token_url: str, issuer: str, **settings_: Any) -> AsyncIterator[Sidecar]:
    """A started sidecar worker (ext_authz, OAuth facade, feed client) on 127.0.0.1:0 ports;
    ``settings_`` override its Settings fields."""
    from prometheus_client import CollectorRegistry

    from sidecar.metrics import Metrics
    from sidecar.server import Sidecar
    from sidecar.settings import Settings

    settings = Settings(
        token_url=token_url,
        issuer=issuer,
        authz_listen="127.0.0.1:0",
        oauth_listen="127.0.0.1:0",
        metrics_listen="",
        feed_token=TEST_FEED_TOKEN,
        **settings_,
    )
    sidecar = Sidecar(settings, Metrics(CollectorRegistry()))
    await sidecar.start()
    try:
        yield sidecar
    finally:
        await sidecar.stop(0)
