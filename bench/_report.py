"""Collects what the scenarios measured and writes ``bench/RESULTS.md`` and the latency chart."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench._system import Machine


@dataclass
class Section:
    title: str
    intro: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: further markdown (profiles) after the notes
    extra: list[str] = field(default_factory=list)


#: Other processes' CPU (cores) above which a verdict is reported as inconclusive: the
#: measurement competed with someone else's work for the 2 cores.
NOISY_CORES = 0.5


@dataclass
class Target:
    what: str
    target: str
    measured: str
    met: bool | None  # None: not measured
    background_cores: float | None = None  # other processes' CPU during the measurement

    def verdict(self) -> str:
        if self.met is None:
            return "not measured"
        outcome = "met" if self.met else "missed"
        if self.background_cores is not None and self.background_cores > NOISY_CORES:
            return f"inconclusive ({outcome} while other processes used {self.background_cores:.1f} cores)"
        return outcome if self.met else "**missed**"


@dataclass
class Report:
    machine: Machine
    command: str
    sections: list[Section] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    not_measured: list[str] = field(default_factory=list)
    #: chart panel title → {series label → ascending latencies in seconds}
    latencies: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def section(self, title: str, intro: str, columns: list[str]) -> Section:
        section = Section(title, intro, columns)
        self.sections.append(section)
        return section

    def target(
        self, what: str, target: str, measured: str, met: bool | None, background_cores: float | None = None
    ) -> None:
        self.targets.append(Target(what, target, measured, met, background_cores))


def ms(seconds: float) -> str:
    return "–" if math.isnan(seconds) else f"{seconds * 1000:.2f}"


def rate(value: float) -> str:
    return f"{value:,.0f}"


def cores(cpu_s: float, wall_s: float) -> str:
    """CPU time as a number of cores busy over the wall time."""
    return f"{cpu_s / wall_s:.2f}" if wall_s > 0 else "–"


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render(report: Report, chart_name: str | None) -> str:
    m = report.machine
    load = os.getloadavg()
    lines = [
        "# Benchmark results",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC} by `{report.command}` (`./dev bench` reproduces it).",
        "",
        "## Machine",
        "",
        f"- CPU: {m.cpu_model}, **{m.cores} cores**, {m.memory_mib:,} MiB RAM, Linux {m.kernel}",
        f"- Python {m.python}; Envoy {m.envoy}; {m.wrk}; {m.h2load}",
        f"- Load average at the end of the run: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)",
        "",
        f"**All processes share these {m.cores} cores**: the load generator, Envoy, the authorization "
        "server or token service, and, while these figures were taken, other developers' test runs on "
        "the same machine. Each figure therefore comes with the CPU each party used, in cores "
        "(CPU seconds ÷ wall seconds; 2.00 = both cores). Absolute rates move with that background "
        "load; the ratios measured back to back in one run are the figures to compare.",
        "",
    ]
    if report.targets:
        lines += ["## Targets", ""]
        rows = [[t.what, t.target, t.measured, t.verdict()] for t in report.targets]
        lines += [*_table(["what", "target", "measured", "verdict"], rows), ""]
    if report.not_measured:
        lines += ["## Not measured in this run", ""]
        lines += [f"- {item}" for item in report.not_measured]
        lines.append("")
    for section in report.sections:
        lines += [f"## {section.title}", "", section.intro, ""]
        if section.rows:
            lines += [*_table(section.columns, section.rows), ""]
        lines += [f"- {note}" for note in section.notes]
        if section.notes:
            lines.append("")
        lines += section.extra
    if chart_name and report.latencies:
        lines += ["## Latency distributions", "", f"![latency distributions]({chart_name})", ""]
    return "\n".join(lines)


def chart(report: Report, path: Path) -> bool:
    """Percentile plots (log-scaled tail) of every recorded latency distribution; False if none."""
    panels = {title: series for title, series in report.latencies.items() if any(series.values())}
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.6 * len(panels)), squeeze=False)
    for ax, (title, series) in zip(axes[:, 0], panels.items(), strict=True):
        for label, values in series.items():
            if not values:
                continue
            n = len(values)
            # x: "nines" of the percentile (0 = p0, 1 = p90, 2 = p99, 3 = p99.9), the usual HDR view
            xs = [-math.log10(1 - (i + 0.5) / n) for i in range(n)]
            ax.plot(xs, [v * 1000 for v in values], label=f"{label} (n={n:,})", linewidth=1.2)
        ax.set_title(title)
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        ticks = [0, 0.301, 1, 2, 3, 4]
        ax.set_xticks(ticks, ["0", "50", "90", "99", "99.9", "99.99"])
        ax.set_xlim(0, 4)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
