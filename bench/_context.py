"""What every scenario receives: the options, a work directory, the harness's signing key and the
report to add to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench._report import Report
from bench._tokens import SigningKey


@dataclass(frozen=True)
class Options:
    scenarios: tuple[int, ...]
    duration_s: float
    smoke: bool
    envoy_concurrency: int
    canned_mode: str
    sidecar_workers: tuple[int, ...]
    revocations: int
    subscribers: int
    revoked_jti: int
    out: Path
    keep: bool


@dataclass
class Bench:
    options: Options
    workdir: Path
    key: SigningKey
    report: Report

    def wants(self, scenario: int) -> bool:
        return scenario in self.options.scenarios
