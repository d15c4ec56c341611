"""Render the tables of docs/configuration.md and docs/metrics.md from the code: ``./dev docs``.

A page holds hand-written text and generated blocks::

    <!-- generated: settings token-service -->
    ...table rendered by this module...
    <!-- end generated -->

``python -m tools.docgen`` rewrites every block of every page in :data:`PAGES`; with ``--check``
it changes nothing and exits 1 when a page differs from what the code says (the test suite does
the same, so a renamed variable or a new metric cannot go undocumented).

The environment tables come from the settings dataclasses (each field declared with
:func:`native_iam.envdoc.setting`) and the admin CLI's :data:`~token_service.cli.admin.ENV_VARS`;
the metric tables from the collectors that :mod:`token_service.metrics` and
:mod:`sidecar.metrics` create.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from native_iam.envdoc import EnvVar, documented

ROOT = Path(__file__).resolve().parent.parent
PAGES = (ROOT / "docs" / "configuration.md", ROOT / "docs" / "metrics.md")

_BLOCK = re.compile(r"(<!-- generated: (?P<key>[a-z-]+ [a-z-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.DOTALL)

# Unit of a variable, from the suffix every duration or size variable carries.
_UNITS = (("_S", "seconds"), ("_KIB", "KiB"), ("_BYTES", "bytes"))


def _unit(name: str) -> str:
    return next((unit for suffix, unit in _UNITS if name.endswith(suffix)), "")


def _shown(value: Any) -> str:
    """A field default as an operator would type it."""
    if value is None or value == "" or value == ():
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, tuple):
        value = " ".join(map(str, value))
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _env_rows(rows: Iterable[tuple[EnvVar, str]]) -> str:
    lines = ["| variable | default | unit | meaning |", "|---|---|---|---|"]
    for var, default in rows:
        lines.append(f"| `{var.name}` | {var.shown_default or default} | {_unit(var.name)} | {_cell(var.meaning)} |")
        if var.was:
            old = f"deprecated name of `{var.name}` ({var.why_renamed}); still read for one release, with a WARNING"
            lines.append(f"| `{var.was}` | | | {_cell(old)} |")
    return "\n".join(lines) + "\n"


def _settings_rows(cls: type) -> list[tuple[EnvVar, str]]:
    rows = []
    for field, var in documented(cls):
        has_default = field.default is not dataclasses.MISSING
        rows.append((var, _shown(field.default) if has_default else ""))
    return rows


def token_service_settings() -> str:
    from token_service.cli import admin as admin_cli
    from token_service.settings import Settings

    return _env_rows([*_settings_rows(Settings), *((var, "unset") for var in admin_cli.ENV_VARS)])


def sidecar_settings() -> str:
    from sidecar.settings import Settings

    return _env_rows(_settings_rows(Settings))


def _collectors(owner: object) -> list[MetricWrapperBase]:
    """The metrics ``owner`` (a Metrics object) created, in declaration order, each once."""
    found: dict[str, MetricWrapperBase] = {}
    for value in vars(owner).values():
        # A bound child (``metrics.hit``) is a MetricWrapperBase too: only parents are metrics.
        if isinstance(value, MetricWrapperBase) and not value._labelvalues:
            found.setdefault(value._name, value)
    return list(found.values())


def _metric_rows(collectors: Iterable[MetricWrapperBase]) -> str:
    lines = ["| metric | type | labels | merged across workers | help |", "|---|---|---|---|---|"]
    for c in collectors:
        # prometheus_client keeps a counter's name without the `_total` it exports.
        name = c._name + ("_total" if c._type == "counter" else "")
        labels = ", ".join(f"`{label}`" for label in c._labelnames)
        merge = getattr(c, "_multiprocess_mode", "") if c._type == "gauge" else "sum"
        lines.append(f"| `{name}` | {c._type} | {labels} | {merge} | {_cell(c._documentation)} |")
    return "\n".join(lines) + "\n"


def token_service_collectors() -> list[MetricWrapperBase]:
    from token_service.metrics import Metrics, http_connections_cut_counter, http_requests_counter

    metrics = Metrics()
    extra = (http_connections_cut_counter(metrics.registry), http_requests_counter(metrics.registry))
    return [*_collectors(metrics), *extra]


def sidecar_collectors() -> list[MetricWrapperBase]:
    from sidecar.metrics import Metrics

    return _collectors(Metrics(CollectorRegistry()))


def exported_names() -> dict[str, str]:
    """Every metric name both roles export (a counter with ``_total``) → its type; the Grafana
    dashboard (tools/dashboard.py) is built against this."""
    return {
        c._name + ("_total" if c._type == "counter" else ""): c._type
        for c in (*token_service_collectors(), *sidecar_collectors())
    }


def token_service_metrics() -> str:
    return _metric_rows(token_service_collectors())


def sidecar_metrics() -> str:
    return _metric_rows(sidecar_collectors())


RENDERERS: dict[str, Callable[[], str]] = {
    "settings token-service": token_service_settings,
    "settings sidecar": sidecar_settings,
    "metrics token-service": token_service_metrics,
    "metrics sidecar": sidecar_metrics,
}


def render(page: str) -> str:
    """``page`` with every generated block rendered afresh; an unknown block key is an error."""

    def block(match: re.Match[str]) -> str:
        key = match["key"]
        if key not in RENDERERS:
            raise SystemExit(f"docgen: no renderer for block {key!r}")
        return match.group(1) + RENDERERS[key]() + match.group(4)

    return _BLOCK.sub(block, page)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path in PAGES:
        text = path.read_text(encoding="utf-8")
        rendered = render(text)
        if rendered != text:
            stale.append(path.relative_to(ROOT))
            if not check:
                path.write_text(rendered, encoding="utf-8")
    if stale:
        verb = "out of date (run ./dev docs)" if check else "rewritten"
        print(f"docgen: {verb}: {', '.join(map(str, stale))}", file=sys.stderr)
    return 1 if stale and check else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
