"""Sampling profiles of a server under load with py-spy (``--profile``): where its CPU goes,
summarised as the functions with the most samples, for the scenarios that miss a target."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


@dataclass
class Profile:
    samples: int
    self_share: list[tuple[str, float]]  # function → share of samples where it is the leaf
    total_share: list[tuple[str, float]]  # function → share of samples where it is on the stack
    raw: Path


def available() -> bool:
    return shutil.which("py-spy") is not None


def start(pid: int, seconds: float, raw: Path, *, rate: int = 200) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` (and its worker processes) for ``seconds``; collapsed stacks go to ``raw``."""
    # --gil: only threads holding the GIL, i.e. Python code burning CPU (idle pollers and threads
    # blocked in grpc's C core would otherwise dominate the samples).
    argv = ["py-spy", "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--gil", "--format", "raw"]
    argv += ["--rate", str(rate), "--duration", str(max(1, round(seconds))), "--output", str(raw)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame(frame: str) -> str:
    # "decide (sidecar/decision.py:120)" → "decide (sidecar/decision.py)"; shorten site-packages paths
    frame = _LINE.sub(")", frame.strip())
    return re.sub(r"\(.*?site-packages/", "(", frame)


def summarize(raw: Path, top: int = 12) -> Profile:
    leaf: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # The first element names the process; drop interpreter start-up frames that are on every stack.
        frames = [_frame(f) for f in stack.split(";")[1:]]
        frames = [f for f in frames if not f.startswith(("<module>", "_run_module_as_main", "_run_code", "spawn_main"))]
        if not frames:
            continue
        samples += count
        leaf[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    share = (lambda c: [(name, n / samples) for name, n in c.most_common(top)]) if samples else (lambda c: [])
    return Profile(samples, share(leaf), share(total), raw)


def markdown(title: str, profile: Profile) -> list[str]:
    lines = [
        f"**{title}** — {profile.samples:,} samples of threads holding the GIL (py-spy `--gil`; time in C "
        "code called from Python is charged to the calling Python function; grpc's C core working without "
        "the GIL is not seen):",
        "",
    ]
    lines += ["| self % | function (leaf) |", "|---|---|"]
    lines += [f"| {s:.0%} | `{name}` |" for name, s in profile.self_share]
    lines += ["", "| on stack % | function |", "|---|---|"]
    lines += [f"| {s:.0%} | `{name}` |" for name, s in profile.total_share]
    return [*lines, ""]
