"""native_iam/runtime/workers.py: the supervisor both roles run with NATIVE_IAM_WORKERS > 1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from native_iam.runtime.listen import ListenError
from native_iam.runtime.workers import Workers, fixed_port_problem

ROOT = Path(__file__).resolve().parents[2]


# --- worker targets (module level: spawned workers import them) ------------------------------


def _sleep(pid_dir: str) -> None:
    """A worker that serves forever (until SIGTERM), announcing its pid."""
    Path(pid_dir, str(os.getpid())).touch()
    while True:
        time.sleep(1)


def _one_dies(pid_dir: str) -> None:
    """The first worker to start exits on its own once the other is serving; the other serves forever."""
    try:
        fd = os.open(Path(pid_dir, "dies"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        _sleep(pid_dir)
        return
    os.close(fd)
    Path(pid_dir, str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(_pids(Path(pid_dir))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    sys.exit(3)


def _supervise(target_name: str, pid_dir: str) -> int:
    """Run in a subprocess (the supervisor installs signal handlers): two workers, no metrics."""
    workers = Workers(
        role="test",
        target=globals()[target_name],
        args=(pid_dir,),
        count=2,
        metrics_listen="off",
        metrics_setting="TEST_METRICS_LISTEN",
        stop_timeout_s=10,
    )
    return workers.run()


def _start_supervisor(target_name: str, pid_dir: Path) -> subprocess.Popen[str]:
    code = (
        "from tests.native_iam.test_workers import _supervise; "
        f"raise SystemExit(_supervise({target_name!r}, {str(pid_dir)!r}))"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True)


def _pids(pid_dir: Path) -> list[int]:
    return [int(p.name) for p in pid_dir.iterdir() if p.name.isdigit()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as stopped.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_pids(pid_dir: Path, count: int, process: subprocess.Popen[str], timeout_s: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while len(_pids(pid_dir)) < count and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    pids = _pids(pid_dir)
    assert len(pids) >= count, process.stderr.read() if process.poll() is not None else "workers did not start"  # type: ignore[union-attr]
    return pids


def test_sigterm_stops_every_worker_and_exits_0(tmp_path: Path) -> None:
    """SIGTERM to the supervisor reaches every worker; it waits for them and exits 0."""
    process = _start_supervisor("_sleep", tmp_path)
    try:
        pids = _wait_pids(tmp_path, 2, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, process.stderr.read()  # type: ignore[union-attr]
    finally:
        process.kill()
        process.wait()
    assert not [pid for pid in pids if _alive(pid)]


def test_a_worker_that_dies_stops_the_others_and_exits_1(tmp_path: Path) -> None:
    """One worker exiting on its own takes the whole process down with exit 1 (the orchestrator
    restarts it cleanly) instead of serving on with fewer workers than configured."""
    process = _start_supervisor("_one_dies", tmp_path)
    try:
        pids = _wait_pids(tmp_path, 2, process)
        assert process.wait(timeout=30) == 1, process.stderr.read()  # type: ignore[union-attr]
    finally:
        process.kill()
        process.wait()
    assert not [pid for pid in pids if _alive(pid)]


def test_a_busy_metrics_port_stops_start_up_before_any_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The merged metrics listener opens first: a busy port is a ListenError naming the address
    and the variable, and no worker was started."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # restored after the test: run() sets it
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        workers = Workers("test", _sleep, (str(tmp_path),), 2, busy, "TEST_METRICS_LISTEN")
        with pytest.raises(ListenError, match=f"{busy} \\(TEST_METRICS_LISTEN\\)"):
            workers.run()
    assert workers.processes == [] and _pids(tmp_path) == []


def test_several_workers_need_fixed_ports() -> None:
    """Port 0 would give each worker its own port: refused, naming the variable; off listeners pass."""
    problem = fixed_port_problem({"A_LISTEN": "127.0.0.1:80", "B_LISTEN": "0.0.0.0:0"})
    assert problem is not None and problem.startswith("B_LISTEN")
    assert fixed_port_problem({"A_LISTEN": "127.0.0.1:80", "C_LISTEN": "off", "D_LISTEN": ""}) is None
