"""The Grafana dashboard deploy/grafana/native-iam.json, rendered from this module: ``./dev docs``.

The panels are declared as data in :mod:`tools.dashboard_panels`: a title, the on-call question
it answers (its description in Grafana) and PromQL targets. Targets are built against the metrics
the code declares (:func:`tools.docgen.exported_names`): a target reading a ``native_iam_*``
metric the code does not export is left out, so a panel for a metric another change adds appears
when that change lands and the file is rendered again (``tests/deploy/test_dashboard.py`` fails
while the committed JSON differs, and when an exported metric is on no panel and not in
:data:`~tools.dashboard_panels.NOT_ON_DASHBOARD`).

Selectors: every target filters on the template variables ``job``, ``namespace`` and ``pod``
(``=~``, "All" is ``.*``); the datasource is the ``datasource`` variable. No grafanalib: it is a
dependency for a few hundred lines of JSON that read fine as they are, and this keeps them
reviewable in a diff.

``python -m tools.dashboard`` writes the file; ``--check`` exits 1 when it is out of date.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tools.dashboard_panels import NOT_ON_DASHBOARD, ROWS, Panel, Target

__all__ = ["NOT_ON_DASHBOARD", "OUTPUT", "UID", "dashboard", "live_targets", "metrics_in", "panels", "render"]

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "deploy" / "grafana" / "native-iam.json"
UID = "native-iam-oauth"
_METRIC = re.compile(r"\b(native_iam_[a-z0-9_]+)")


def metrics_in(expr: str) -> set[str]:
    """The native_iam_* metric names an expression reads (histogram series → the histogram)."""
    return set(_METRIC.findall(expr))


def _declared(name: str, exported: Mapping[str, str]) -> bool:
    if name in exported:
        return True
    base = re.sub(r"_(bucket|count|sum)$", "", name)
    return exported.get(base) == "histogram"


def live_targets(panel: Panel, exported: Mapping[str, str]) -> list[Target]:
    """The panel's targets whose metrics the code exports."""
    return [t for t in panel.targets if all(_declared(m, exported) for m in metrics_in(t.expr))]


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,  # on time range change
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _templating() -> dict[str, Any]:
    any_metric = '{__name__=~"native_iam_.+|envoy_cluster_ext_authz_.+"'
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Prometheus",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
            },
            _variable("job", "job", f"label_values({any_metric}}}, job)"),
            _variable("namespace", "namespace", f'label_values({any_metric}, job=~"$job"}}, namespace)'),
            _variable("pod", "pod", f'label_values({any_metric}, job=~"$job", namespace=~"$namespace"}}, pod)'),
        ]
    }


def _panel(panel: Panel, targets: list[Target], panel_id: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.question,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "custom": {"stacking": {"mode": "normal" if panel.stack else "none", "group": "A"}},
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": color, "value": value} for color, value in panel.thresholds],
                },
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}},
        "targets": [
            {
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": t.expr,
                "legendFormat": t.legend,
                "refId": chr(ord("A") + i),
            }
            for i, t in enumerate(targets)
        ],
    }


def dashboard(exported: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The dashboard for the metrics in ``exported`` (default: what the code exports now)."""
    if exported is None:
        from tools.docgen import exported_names

        exported = exported_names()
    panels: list[dict[str, Any]] = []
    panel_id, y = 1, 0
    for row in ROWS:
        panels.append(
            {"id": panel_id, "type": "row", "title": row.title, "collapsed": False, "panels": [],
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}
        )  # fmt: skip
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row.panels:
            targets = live_targets(panel, exported)
            if not targets:
                continue
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(_panel(panel, targets, panel_id, x, y))
            panel_id, x = panel_id + 1, x + panel.width
        y += 8
    return {
        "__inputs": [],
        "uid": UID,
        "title": "native-iam-oauth",
        "description": "Sidecar decisions and token service health: see docs/observability.md and docs/runbook.md.",
        "tags": ["native-iam", "oauth"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "utc",
        "templating": _templating(),
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def render(exported: Mapping[str, str] | None = None) -> str:
    return json.dumps(dashboard(exported), indent=2, sort_keys=False) + "\n"


def panels(board: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """The graph panels of a rendered dashboard (rows left out)."""
    return (p for p in board["panels"] if p["type"] != "row")


def main(argv: list[str]) -> int:
    rendered = render()
    current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
    if rendered == current:
        return 0
    if "--check" in argv:
        print(f"dashboard: {OUTPUT.relative_to(ROOT)} out of date (run ./dev docs)", file=sys.stderr)
        return 1
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(rendered, encoding="utf-8")
    print(f"dashboard: rewrote {OUTPUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
