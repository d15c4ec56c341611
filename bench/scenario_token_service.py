"""Placeholder until the scenario is written."""

from __future__ import annotations

from bench._context import Bench


def run(bench: Bench) -> None:
    bench.report.not_measured.append("scenario_token_service: not written yet")
