"""sidecar/cli.py: `native-iam sidecar` start-up, configuration errors, worker processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2

from native_iam._procs import free_port
from sidecar import cli
from tests.conftest import one_line_refusal

from ..conftest import require_tool
from . import _stack
from ._feed import AUDIENCE, ISSUER, FeedServer, Issuer
from .conftest import wait_for


def test_bad_setting_exits_2_naming_the_variable(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A bad environment value stops start-up with exit code 2 and the variable's name."""
    monkeypatch.setenv("NATIVE_IAM_FEED_STALE_POLICY", "sometimes")
    assert cli.main([]) == 2
    assert "NATIVE_IAM_FEED_STALE_POLICY" in capsys.readouterr().err


def test_help_exits_0() -> None:
    """`native-iam sidecar --help` prints usage and exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "native_iam.cli", "sidecar", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "NATIVE_IAM_" in result.stdout


def test_two_workers_share_the_port_and_merge_metrics(feed: FeedServer, issuer: Issuer, tmp_path: Path) -> None:
    """NATIVE_IAM_WORKERS=2: both processes answer Check on one port; /metrics merges them, promtool-clean."""
    env = {
        "NATIVE_IAM_TOKEN_URL": feed.address,
        "NATIVE_IAM_ISSUER": ISSUER,
        "NATIVE_IAM_ACCEPTED_AUDIENCES": AUDIENCE,
        "NATIVE_IAM_WORKERS": "2",
    }
    with _stack.sidecar(tmp_path, env) as ports:
        # Both workers subscribed (and so synced a moment later) before any Check is sent.
        assert wait_for(lambda: len(feed.watch_requests) >= 2)
        time.sleep(0.3)
        request = external_auth_pb2.CheckRequest()
        request.attributes.request.http.headers["authorization"] = f"Bearer {issuer.mint()}"
        # Separate channels (connections) so the kernel spreads them over both workers.
        for _ in range(8):
            with grpc.insecure_channel(
                f"127.0.0.1:{ports['authz']}", options=[("grpc.use_local_subchannel_pool", 1)]
            ) as channel:
                assert (
                    external_auth_pb2_grpc.AuthorizationStub(channel).Check(request, timeout=5).status.code
                    == code_pb2.OK
                )
        text = httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=5).text
    allowed = [
        line
        for line in text.splitlines()
        if line.startswith('native_iam_sidecar_decisions_total{reason="token",result="allow"}')
    ]
    assert allowed and float(allowed[0].split()[-1]) == 8
    promtool = require_tool("promtool")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


_LISTENERS = (
    "NATIVE_IAM_AUTHZ_LISTEN",
    "NATIVE_IAM_AUTHZ_HTTP_LISTEN",
    "NATIVE_IAM_OAUTH_LISTEN",
    "NATIVE_IAM_METRICS_LISTEN",
)


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("variable", _LISTENERS)
def test_a_busy_port_is_one_line_naming_the_address_and_variable(variable: str, workers: str) -> None:
    """Each listener's port already taken: exit 1 with one line naming the address and the
    variable — no traceback — with one process and with several workers."""
    addresses = {name: f"127.0.0.1:{free_port()}" for name in _LISTENERS}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        addresses[variable] = busy
        result = subprocess.run(
            [sys.executable, "-m", "native_iam.cli", "sidecar"],
            env={
                **os.environ,
                **addresses,
                "NATIVE_IAM_TOKEN_URL": f"127.0.0.1:{free_port()}",
                "NATIVE_IAM_WORKERS": workers,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    line = one_line_refusal(result, "native-iam sidecar: ")
    assert busy in line and variable in line, line


def _run_sidecar(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "native_iam.cli", "sidecar"],
        env={**os.environ, "NATIVE_IAM_TOKEN_URL": f"127.0.0.1:{free_port()}", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_deprecated_variable_is_one_warning_at_start_up() -> None:
    """NATIVE_IAM_AUDIENCE (now NATIVE_IAM_ACCEPTED_AUDIENCES) still works, with one WARNING log
    line naming old and new. (A busy ext_authz port ends the run right after start-up.)"""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = _run_sidecar(
            {
                "NATIVE_IAM_AUDIENCE": "orders",
                "NATIVE_IAM_AUTHZ_LISTEN": f"127.0.0.1:{taken.getsockname()[1]}",
                "NATIVE_IAM_OAUTH_LISTEN": "off",
                "NATIVE_IAM_METRICS_LISTEN": "off",
                "NATIVE_IAM_LOG_FORMAT": "json",
            }
        )
    assert result.returncode == 1, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if "deprecated" in line]
    assert len(warnings) == 1, result.stderr[-2000:]
    record = json.loads(warnings[0])
    assert record["level"] == "WARNING"
    assert "NATIVE_IAM_AUDIENCE" in record["msg"] and "NATIVE_IAM_ACCEPTED_AUDIENCES" in record["msg"]


@pytest.mark.parametrize("variable", ["NATIVE_IAM_AUTHZ_LISTEN", "NATIVE_IAM_AUTHZ_HTTP_LISTEN"])
def test_several_workers_need_fixed_ports(variable: str) -> None:
    """NATIVE_IAM_WORKERS=2 with port 0 would give each worker its own port: exit 2 naming the variable."""
    result = _run_sidecar({"NATIVE_IAM_WORKERS": "2", variable: "127.0.0.1:0", "NATIVE_IAM_METRICS_LISTEN": "off"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"native-iam sidecar: {variable} needs a fixed port" in result.stderr


def test_invalid_route_table_at_start_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """An invalid NATIVE_IAM_ROUTE_TABLE_FILE stops start-up like a bad setting: exit 2, one stderr
    line naming the variable, the file and the rule's line, no traceback."""
    table = tmp_path / "routes.yaml"
    table.write_text("routes:\n  - match: {prefix: /a}\n    require: {}\n  - match: {pth: /b}\n    require: {}\n")
    result = _run_sidecar({"NATIVE_IAM_ROUTE_TABLE_FILE": str(table), "NATIVE_IAM_METRICS_LISTEN": "off"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("native-iam sidecar: ")]
    assert f"NATIVE_IAM_ROUTE_TABLE_FILE: {table}: line 4: routes[1].match: unknown key 'pth'" in line, line
