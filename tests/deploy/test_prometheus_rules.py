"""deploy/prometheus/rules.yaml: valid for promtool, alerts behave as unit-tested in
rules_test.yaml, and every metric the rules read is one the components export."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool

from .conftest import ROOT

RULES = ROOT / "deploy/prometheus/rules.yaml"
RULE_TESTS = Path(__file__).with_name("rules_test.yaml")
REQUIRED_ALERTS = {
    "NativeIamDenyRateSpike",
    "NativeIamFeedStale",
    "NativeIamJwksKeysOld",
    "NativeIamTokenServiceErrors",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("promtool")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, check=False)


def test_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts the rule file."""
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alerts_fire_as_specified() -> None:
    """`promtool test rules`: deny spike, stale feed, old keys and token-service errors fire
    (and don't) as specified."""
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_required_alert_exists() -> None:
    """The rule file has the deny-rate spike, feed stale, key age and token-service error alerts, and each alert is
    unit-tested."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    assert alerts >= REQUIRED_ALERTS
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text(encoding="utf-8")))
    assert alerts <= tested, "every alert has a promtool unit test"


def _metrics_read_by_rules() -> set[str]:
    """Raw metric names in the rule expressions (recorded series, with a colon, excluded)."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    names: set[str] = set()
    for group in groups:
        for rule in group["rules"]:
            names |= set(re.findall(r"(?<![:\w])(native_iam_[a-z0-9_]+)(?![:\w])", rule["expr"]))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def _exported_by(module: Path) -> set[str]:
    """Metric names a metrics module declares (the first argument of each prometheus_client metric).

    prometheus_client exposes a Counter declared as "x" or "x_total" as x_total, hence both.
    """
    text = module.read_text(encoding="utf-8")
    found = set(re.findall(r"(?:Counter|Gauge|Histogram|Summary|Info|Enum)\(\s*\"([a-z0-9_]+)\"", text))
    return found | {f"{n}_total" for n in found}


def _owner(metric: str) -> str:
    return "sidecar" if metric.startswith("native_iam_sidecar_") else "token_service"


@pytest.mark.parametrize("component", ["sidecar", "token_service"])
def test_rules_read_metrics_the_components_export(component: str) -> None:
    """Each native_iam_* metric in the rules is declared by that component's metrics module.

    A renamed metric would otherwise silence its alert without any error.
    """
    path = ROOT / component / "metrics.py"
    used = {n for n in _metrics_read_by_rules() if _owner(n) == component}
    assert used
    assert used - _exported_by(path) == set()
