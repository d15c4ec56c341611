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
    """--check starts everything, runs token → allow → 403 → anonymous → 401 → revoke → 401, then the
    browser sign-in (authorize → login → consent → code → PKCE exchange → Envoy), exits 0."""
    require_tool("envoy")
    result = subprocess.run(
        [sys.executable, "-m", "native_iam.cli", "demo", "--check", "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert result.stdout.count("ok  ") == 12, result.stdout  # 8 curl steps + 4 of the browser sign-in
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


def test_demo_prints_a_sign_in_url_a_person_can_open() -> None:
    """The banner's step 6: the authorize URL of demo-web with an S256 challenge of the printed verifier."""
    import base64
    import hashlib
    from urllib.parse import parse_qs, urlsplit

    from native_iam import demo_login

    ports = {"token_http": 8080, "upstream": 8000}
    text = demo_login.commands(ports, "demo", "pw", "v" * 64)
    url = next(line.split()[-1] for line in text.splitlines() if "/oauth2/authorize?" in line)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith("http://127.0.0.1:8080/oauth2/authorize?") and query["client_id"] == "demo-web"
    expected = base64.urlsafe_b64encode(hashlib.sha256(b"v" * 64).digest()).rstrip(b"=").decode()
    assert query["code_challenge"] == expected and query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == "http://127.0.0.1:8000/callback" and "code_verifier=" + "v" * 64 in text
