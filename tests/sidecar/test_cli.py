"""sidecar/cli.py: `native-iam sidecar` start-up, configuration errors, worker processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2

from sidecar import cli

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
        "NATIVE_IAM_AUDIENCE": AUDIENCE,
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
