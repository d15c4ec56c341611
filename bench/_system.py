"""What the benchmarks need to know about the machine and the processes they measure, read from
``/proc`` (Linux only): CPU model, process-tree CPU time and resident memory."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Machine:
    cpu_model: str
    cores: int
    memory_mib: int
    kernel: str
    python: str
    envoy: str
    wrk: str
    h2load: str


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def describe_machine(envoy: str) -> Machine:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    envoy_version = _first_line([envoy, "--version"]).split("version:")[-1].strip()
    return Machine(
        cpu_model=model,
        cores=os.cpu_count() or 0,
        memory_mib=mem_kib // 1024,
        kernel=platform.release(),
        python=sys.version.split()[0],
        envoy=envoy_version,
        wrk=_first_line(["wrk", "--version"]).split(" [")[0],
        h2load=_first_line(["h2load", "--version"]),
    )


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    return raw[raw.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (worker processes of a server)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants, in seconds."""
    total = 0
    for each in descendants(pid):
        fields = _stat_fields(each)
        if fields is not None:
            # After the ")" split: state is index 0, so utime (field 14) is 11 and stime 12.
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` and its live descendants (sum of RSS: shared pages count once
    per process, so this over-states a forked tree slightly)."""
    total = 0
    for each in descendants(pid):
        try:
            pages = int(Path(f"/proc/{each}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += pages * PAGE_SIZE
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def wait_for_quiet(*, max_wait_s: float = 30.0, window_s: float = 1.0, busy_cores: float = 0.4) -> float:
    """Wait (at most ``max_wait_s``) for a ``window_s`` in which the machine is busy for less than
    ``busy_cores`` cores: other people's test runs share the cores. Returns the busy cores seen last."""
    deadline = time.monotonic() + max_wait_s
    while True:
        before = machine_busy_seconds()
        time.sleep(window_s)
        busy = (machine_busy_seconds() - before) / window_s
        if busy < busy_cores or time.monotonic() > deadline:
            return busy


class CpuMeter:
    """CPU seconds used by several process trees between ``start()`` and ``stop()``, and by the
    whole machine (``machine_s``), so that what the measured processes did not use is visible."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._before: dict[str, float] = {}
        self._machine_before = 0.0
        self.used: dict[str, float] = {}
        self.machine_s = 0.0

    def start(self) -> CpuMeter:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine_before = machine_busy_seconds()
        return self

    def stop(self) -> dict[str, float]:
        self.machine_s = machine_busy_seconds() - self._machine_before
        self.used = {name: cpu_seconds(pid) - self._before[name] for name, pid in self.pids.items()}
        return self.used
