"""``native-iam demo``: the README's first command, end to end with real processes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from native_iam._procs import port_open
from tests.conftest import require_tool

pytestmark = pytest.mark.envoy


def test_demo_check_runs_the_printed_flow(tmp_path: Path) -> None:
    """--check starts everything, runs token → allow → 403 → anonymous → 401 → revoke → 401, exits 0."""
    require_tool("envoy")
    result = subprocess.run(
        [sys.executable, "-m", "native_iam.cli", "demo", "--check", "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert result.stdout.count("ok  ") == 8, result.stdout
    # No password or token of the demo leaks into the logs of the services.
    creds = (tmp_path / "demo" / "demo-credentials.json").read_text()
    demo_password = re.search(r'"demo_password": "([^"]+)"', creds)
    assert demo_password is not None
    for log in (tmp_path / "demo" / "logs").glob("*.log"):
        assert demo_password.group(1) not in log.read_text(), log.name


def test_demo_stops_every_process_on_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) after start-up stops Envoy, the sidecar and the token service; exit code 0."""
    require_tool("envoy")
    demo = subprocess.Popen(
        [sys.executable, "-m", "native_iam.cli", "demo", "--free-ports", "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        output.append(line)
        if "Everything is up" in line or not line:
            break
    text = "".join(output)
    assert "Everything is up" in text, text
    # Read the rest of the banner to learn the Envoy port.
    while "Ctrl-C" not in text:
        text += demo.stdout.readline()
    banner = text + "".join(demo.stdout.readline() for _ in range(12))
    envoy_port = int(re.search(r"http://127\.0\.0\.1:(\d+)/orders", banner).group(1))  # type: ignore[union-attr]
    assert port_open("127.0.0.1", envoy_port)
    demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, rest
    assert "stopped." in rest
    assert not port_open("127.0.0.1", envoy_port)
