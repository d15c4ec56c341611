"""Suite-wide fixtures and helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from native_iam.runtime.telemetry import _SPANS_FIELD

# One PostgreSQL per session for every directory outside tests/token_service (which still defines
# its own, so at most two run): the reliability and security tests reuse the token service's fixture.
from tests.k8s_issuer import KubernetesIssuer
from tests.token_service.conftest import postgres_server, redis_server, redis_url

__all__ = [
    "Collector",
    "collector",
    "k8s_issuer",
    "one_line_refusal",
    "postgres_server",
    "redis_server",
    "redis_url",
    "require_tool",
]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
def k8s_issuer() -> Iterator[KubernetesIssuer]:
    """A stand-in Kubernetes service-account issuer (discovery + JWKS on 127.0.0.1; tests/k8s_issuer.py)."""
    with KubernetesIssuer() as issuer:
        yield issuer


def one_line_refusal(result: subprocess.CompletedProcess[str], prefix: str) -> str:
    """The single stderr line (starting with ``prefix``) with which a command refused to start:
    exit 1, no traceback, exactly one such line — what both roles promise for a bad setting."""
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    lines = {line for line in result.stderr.splitlines() if line.startswith(prefix)}
    assert len(lines) == 1, result.stderr[-2000:]
    return lines.pop()


def require_tool(name: str) -> str:
    """Return the path of the executable ``name``.

    Locally a missing tool skips the test with a message saying what to install; in CI it fails
    the test, so a missing install step can never turn the suite green by skipping.
    """
    # Tools that come as wheels (envoy, kubectl, hadolint, kubernetes-validate) sit beside the
    # interpreter: found there too when the suite runs as .venv/bin/python without .venv/bin on PATH.
    path = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if path is None:
        message = f"{name!r} is not installed (./dev test installs it: a Debian package or a test wheel)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (soak and long fuzz runs) only run when ``-m`` selects them.

    A plain ``pytest`` (and ``.ci/run``) skips them, so the suite stays within its time budget;
    ``pytest -m slow`` runs exactly them.
    """
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An in-process OTLP/gRPC trace receiver: what SYSTEM_TELEMETRY_EXPORTER_ENDPOINT points at."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    async def Export(self, request, context):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[Any]:
        return [
            span
            for request in self.requests
            for resource in request.resource_spans
            for scope in getattr(resource, _SPANS_FIELD)
            for span in scope.spans
        ]

    def services(self) -> dict[bytes, str]:
        """span id → service.name of the resource that exported it."""
        out: dict[bytes, str] = {}
        for request in self.requests:
            for resource in request.resource_spans:
                name = next(
                    (kv.value.string_value for kv in resource.resource.attributes if kv.key == "service.name"), ""
                )
                for scope in getattr(resource, _SPANS_FIELD):
                    for span in scope.spans:
                        out[span.span_id] = name
        return out


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    """A running :class:`Collector` and its ``host:port``."""
    server = grpc.aio.server()
    servicer = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(0)
