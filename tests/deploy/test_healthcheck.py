"""deploy/docker/healthcheck.py: the probe the image's HEALTHCHECK and the sidecar's exec probes
run, against a real grpc.health.v1 server on a free port."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from concurrent import futures
from types import ModuleType

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .conftest import ROOT

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def probe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("native_iam_healthcheck", ROOT / "deploy/docker/healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(None)


def _closed_port() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_serving_server_is_healthy(probe: ModuleType, health_server: tuple[str, health.HealthServicer]) -> None:
    """A server reporting SERVING for "" makes the probe exit 0."""
    address, servicer = health_server
    servicer.set("", SERVING)
    assert probe.main([address], {}) == 0


def test_not_serving_server_is_unhealthy(probe: ModuleType, health_server: tuple[str, health.HealthServicer]) -> None:
    """A server reporting NOT_SERVING makes the probe exit 1."""
    address, servicer = health_server
    servicer.set("", NOT_SERVING)
    assert probe.main([address], {}) == 1


def test_alive_accepts_not_serving(probe: ModuleType, health_server: tuple[str, health.HealthServicer]) -> None:
    """--alive (the sidecar's liveness) passes for a NOT_SERVING server: it answers, so it is not restarted."""
    address, servicer = health_server
    servicer.set("", NOT_SERVING)
    assert probe.main(["--alive", address], {}) == 0


def test_nothing_listening_is_unhealthy_even_with_alive(probe: ModuleType) -> None:
    """No server at the address: exit 1, with or without --alive."""
    address = _closed_port()
    assert probe.main([address], {}) == 1
    assert probe.main(["--alive", address], {}) == 1


def test_without_arguments_probes_the_roles_listen_addresses(
    probe: ModuleType, health_server: tuple[str, health.HealthServicer]
) -> None:
    """No address: the token service's NATIVE_IAM_GRPC_LISTEN (wildcard host → loopback) or the sidecar's
    NATIVE_IAM_AUTHZ_LISTEN, whichever serves."""
    address, servicer = health_server
    servicer.set("", SERVING)
    port = address.rpartition(":")[2]
    closed = _closed_port()
    assert probe.main([], {"NATIVE_IAM_GRPC_LISTEN": f"0.0.0.0:{port}", "NATIVE_IAM_AUTHZ_LISTEN": closed}) == 0
    assert probe.main([], {"NATIVE_IAM_GRPC_LISTEN": closed, "NATIVE_IAM_AUTHZ_LISTEN": address}) == 0
    assert probe.main([], {"NATIVE_IAM_GRPC_LISTEN": closed, "NATIVE_IAM_AUTHZ_LISTEN": _closed_port()}) == 1


def test_bad_address_exits_1_not_dockers_reserved_2(probe: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed address is reported and exits 1 (Docker reserves exit status 2)."""
    assert probe.main(["no-port-here"], {}) == 1
    assert "HOST:PORT" in capsys.readouterr().err


def test_script_runs_standalone(health_server: tuple[str, health.HealthServicer]) -> None:
    """`python healthcheck.py ADDRESS` works as a process, as the probes run it."""
    import subprocess

    address, servicer = health_server
    servicer.set("", SERVING)
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy/docker/healthcheck.py"), address],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
