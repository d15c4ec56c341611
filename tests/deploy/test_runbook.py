"""docs/runbook.md has one entry per alert of deploy/prometheus/rules.yaml, and no entry for an
alert that is gone."""

from __future__ import annotations

import re

import yaml

from .conftest import ROOT
from .test_prometheus_rules import RULES

RUNBOOK = ROOT / "docs" / "runbook.md"


def test_every_alert_has_a_runbook_entry() -> None:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    text = RUNBOOK.read_text(encoding="utf-8")
    entries = set(re.findall(r"^## (\w+)$", text, re.MULTILINE))
    assert alerts - entries == set(), "add a runbook entry (## AlertName) for each"
    assert entries - alerts == set(), "runbook entries for alerts that no longer exist"
    for name in alerts:
        body = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert "**Means.**" in body and "**Do.**" in body, name
