"""The benchmark harness still runs end to end: ``bench/run.py --smoke`` (about a second per
measurement) against real Envoy, wrk, h2load and whatever servers exist, so it cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from native_iam._procs import ProcessFailed, envoy_binary
from tests.conftest import IN_CI, require_tool

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    require_tool("wrk")
    require_tool("h2load")
    try:
        envoy_binary()
    except ProcessFailed as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=ROOT,
    )
    return completed, out


def test_smoke_run_succeeds(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """Every scenario of the smoke run completes without an error (exit status 0)."""
    completed, _ = smoke_run
    assert completed.returncode == 0, completed.stderr[-4000:]


def test_report_has_a_section_per_envoy_scenario(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The report names the machine and holds measured rows for throughput and fixed-rate latency."""
    _, out = smoke_run
    text = out.read_text()
    assert "**2 cores**" in text or "cores**" in text
    assert "## 1. Throughput at saturation through Envoy" in text
    assert "## 2. Latency at a fixed 1,000 req/s through Envoy" in text
    assert "| jwt_authn |" in text
    assert "| no auth |" in text
    # Both ext_authz transports and both floors, in the same run.
    for row in ("ext_authz canned", "ext_authz http canned ×1", "ext_authz sidecar ×1", "ext_authz http sidecar ×1"):
        assert f"| {row}" in text, row


@pytest.mark.parametrize(
    "title",
    [
        "## 3. Check RPC straight at the sidecar",
        "## 4. Revocation propagation",
        "## 5. Token service: grants and central CheckAccess",
        "## 6. Sidecar memory and snapshot sync",
    ],
)
def test_report_has_a_section_per_server_scenario(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path], title: str
) -> None:
    """Each scenario against the sidecar and the token service wrote its section with measured rows."""
    _, out = smoke_run
    text = out.read_text()
    assert title in text
    section = text.split(title, 1)[1].split("\n## ", 1)[0]
    assert "|---|" in section


def test_chart_is_a_png(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The latency chart is written beside the report as a PNG image."""
    _, out = smoke_run
    chart = out.with_name("latency.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
