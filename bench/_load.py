"""Load generators (wrk, h2load) run as child processes, their output parsed, and their own CPU
time measured with ``wait4`` (they share the machine's cores with what they measure)."""

from __future__ import annotations

import contextlib
import math
import os
import re
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass
class LoadResult:
    requests: int
    seconds: float
    rps: float
    errors: int  # transport errors and non-2xx answers
    cpu_s: float  # CPU time of the load generator itself
    latencies_s: list[float] = field(default_factory=list)  # per request, when the tool logs them
    percentiles_s: dict[float, float] = field(default_factory=dict)
    output: str = ""
    #: CPU the rest of the machine used meanwhile (set by the scenario that measured it)
    other_cpu_s: float = 0.0


def run_measured(argv: list[str], timeout: float) -> tuple[str, float, int]:
    """Run ``argv``; return its output, the CPU seconds it used (user + system) and its exit code."""
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, usage = _wait4(process.pid, timeout)
        except TimeoutError:
            process.kill()
            process.wait()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return out.read().decode(errors="replace"), usage.ru_utime + usage.ru_stime, process.returncode


def run_measured_parallel(argvs: list[list[str]], timeout: float) -> list[tuple[str, float, int]]:
    """Like :func:`run_measured` for several commands started together."""
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(tempfile.TemporaryFile()) for _ in argvs]
        processes = [subprocess.Popen(a, stdout=o, stderr=subprocess.STDOUT) for a, o in zip(argvs, outs, strict=True)]
        results = []
        for process, out in zip(processes, outs, strict=True):
            _, status, usage = _wait4(process.pid, timeout)
            process.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            results.append((out.read().decode(errors="replace"), usage.ru_utime + usage.ru_stime, process.returncode))
        return results


def _wait4(pid: int, timeout: float) -> tuple[int, int, os.struct_rusage]:  # type: ignore[name-defined]
    import time

    deadline = time.monotonic() + timeout
    while True:
        waited, status, usage = os.wait4(pid, os.WNOHANG)
        if waited:
            return waited, status, usage
        if time.monotonic() > deadline:
            raise TimeoutError(f"load generator {pid} still running after {timeout:.0f} s")
        time.sleep(0.02)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0–100) of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def _duration(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str, cpu_s: float) -> LoadResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    done = re.search(r"(\d+) requests in ([\d.]+\w+)", output)
    if done is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(m[1])
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        errors += sum(int(g) for g in m.groups())
    percentiles = {
        float(q): _duration(v) for q, v in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)\s*$", output, re.MULTILINE)
    }
    return LoadResult(
        requests=int(done[1]),
        seconds=_duration(done[2]),
        rps=rps,
        errors=errors,
        cpu_s=cpu_s,
        percentiles_s=percentiles,
        output=output,
    )


def wrk(url: str, *, seconds: float, connections: int, threads: int, headers: dict[str, str]) -> LoadResult:
    argv = ["wrk", "--latency", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    output, cpu_s, code = run_measured([*argv, url], timeout=seconds + 30)
    if code != 0:
        raise RuntimeError(f"wrk failed ({code}):\n{output}")
    return parse_wrk(output, cpu_s)


def parse_h2load(output: str, cpu_s: float, log_file: Path | None) -> LoadResult:
    finished = re.search(r"finished in ([\d.]+\w+), ([\d.]+) req/s", output)
    counts = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", output)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    if finished is None or counts is None or codes is None:
        raise ValueError(f"unexpected h2load output:\n{output}")
    latencies: list[float] = []
    if log_file is not None and log_file.exists():
        for line in log_file.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1].startswith("2"):
                latencies.append(int(parts[2]) / 1e6)
        latencies.sort()
    # h2load's "failed" already includes non-2xx answers ("errored" is the transport subset).
    return LoadResult(
        requests=int(counts[3]),
        seconds=_duration(finished[1]),
        rps=float(finished[2]),
        errors=int(counts[5]),
        cpu_s=cpu_s,
        latencies_s=latencies,
        percentiles_s={q: percentile(latencies, q) for q in (50, 90, 99, 99.9)} if latencies else {},
        output=output,
    )


def h2load(
    url: str,
    *,
    seconds: float,
    clients: int,
    streams: int = 1,
    rps_per_client: int | None = None,
    headers: dict[str, str] | None = None,
    body: Path | None = None,
    h1: bool = False,
    log_file: Path | None = None,
    warm_up_s: float = 0.0,
) -> LoadResult:
    argv = ["h2load", f"-c{clients}", f"-m{streams}", f"-D{max(1, round(seconds))}", "-t1"]
    if warm_up_s:
        argv.append(f"--warm-up-time={max(1, round(warm_up_s))}")
    if rps_per_client:
        argv.append(f"--rps={rps_per_client}")
    if h1:
        argv.append("--h1")
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if body is not None:
        argv += ["-d", str(body)]
    if log_file is not None:
        argv.append(f"--log-file={log_file}")
    output, cpu_s, code = run_measured([*argv, url], timeout=seconds + warm_up_s + 30)
    if code != 0:
        raise RuntimeError(f"h2load failed ({code}):\n{output}")
    return parse_h2load(output, cpu_s, log_file)


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message (uncompressed), the body of a unary call."""
    return struct.pack(">BI", 0, len(message)) + message


#: Headers a gRPC unary call needs when sent by a plain HTTP/2 client such as h2load.
GRPC_HEADERS = {"content-type": "application/grpc", "te": "trailers"}
