"""sidecar/metrics.py: names, labels, and `promtool check metrics` cleanliness."""

from __future__ import annotations

import subprocess

from envoy.service.auth.v3 import external_auth_pb2
from prometheus_client import CollectorRegistry, generate_latest

from sidecar.authorization import Authorizer
from sidecar.decision import Reason
from sidecar.ext_authz_grpc import GrpcCheck
from sidecar.metrics import Metrics
from sidecar.settings import Settings

from ..conftest import require_tool
from ._feed import AUDIENCE, ISSUER, Issuer
from .conftest import loaded_store, synced_cache


def _exercised(issuer: Issuer) -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    authorizer = Authorizer(
        Settings(issuer=ISSUER, audiences=(AUDIENCE,)), loaded_store(issuer), synced_cache(), metrics
    )
    for header in (f"Bearer {issuer.mint()}", None, "Bearer x.y.z"):
        request = external_auth_pb2.CheckRequest()
        if header:
            request.attributes.request.http.headers["authorization"] = header
        GrpcCheck(authorizer).check_sync(request)
    metrics.fetched(True)
    metrics.feed_lag.set(0.2)
    return registry


def test_promtool_check_metrics_is_clean(issuer: Issuer) -> None:
    """The exposition passes `promtool check metrics` without a single complaint."""
    promtool = require_tool("promtool")
    text = generate_latest(_exercised(issuer))
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, check=False)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


def test_every_deny_reason_is_a_label_from_the_start(issuer: Issuer) -> None:
    """Each deny reason has its series at 0 before any deny, so rate() and alerts work at once."""
    registry = CollectorRegistry()
    Metrics(registry)
    for reason in Reason:
        value = registry.get_sample_value(
            "native_iam_sidecar_decisions_total", {"result": "deny", "reason": reason.value}
        )
        assert value == 0, reason


def test_decisions_are_counted_by_result_and_reason(issuer: Issuer) -> None:
    """One allow, one missing and one malformed decision are counted under their labels."""
    registry = _exercised(issuer)
    get = registry.get_sample_value
    assert get("native_iam_sidecar_decisions_total", {"result": "allow", "reason": "token"}) == 1
    assert get("native_iam_sidecar_decisions_total", {"result": "deny", "reason": "missing"}) == 1
    assert get("native_iam_sidecar_decisions_total", {"result": "deny", "reason": "malformed"}) == 1
    assert get("native_iam_sidecar_check_duration_seconds_count") == 3


def test_every_metric_is_in_the_docs() -> None:
    """Each metric the sidecar exports has a row in docs/metrics.md."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    registry = CollectorRegistry()
    Metrics(registry)
    names = {m.name + ("_total" if m.type == "counter" else "") for m in registry.collect()}
    assert names and all(f"`{name}`" in readme for name in names), sorted(n for n in names if f"`{n}`" not in readme)
