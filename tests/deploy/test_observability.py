"""The dashboard and the alert rules against a real Prometheus scraping a live stack.

One stack for the module: a token service (a process, on its own PostgreSQL and Redis), a sidecar process,
Envoy in front of an echo workload, and Prometheus (the Debian package) scraping all three every
second with deploy/prometheus/rules.yaml loaded. The rules are loaded as a test copy in which only
the durations are scaled (``for:`` and the group ``interval`` divided by 60, so five minutes is
five seconds); every ``expr`` is the committed one (a test checks). Before Prometheus starts, an
hour of healthy sidecar decisions is backfilled into its storage (``promtool tsdb
create-blocks-from openmetrics``): the deny-spike rule compares the last 5 minutes with the last
hour, which a Prometheus only minutes old could not tell apart. Then, in order:

1. traffic through Envoy and to the token service (gRPC and HTTP); every dashboard panel's
   queries, with the template variables substituted by the values Prometheus offers for them,
   return data;
2. nothing fires (or is pending) on the healthy stack;
3. a burst of bad tokens → NativeIamDenyRateSpike;
4. a route with invalid requirements → NativeIamRouteInvalid;
4b. Redis killed under grants → NativeIamTokenServiceCacheErrors (Redis started again);
5. PostgreSQL stopped under grants → NativeIamTokenServiceDatabaseErrors and NativeIamTokenServiceErrors;
6. the token service killed → NativeIamTokenServiceAbsent, NativeIamFeedDisconnected and, once
   the lag passes its (unscaled) 30 s, NativeIamFeedStale.

Not fired here: NativeIamJwksKeysOld needs keys older than an hour — the gauge is real seconds
since the last successful fetch and only durations may be scaled, not thresholds; it is
unit-tested with ``promtool test rules`` (tests/deploy/rules_test.yaml), and the key-age panel's
query is proven above.

Deselect with ``-m 'not observability'``; it takes about two minutes.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml

from native_iam._procs import Process, free_port
from tests.conftest import require_tool
from tests.reliability._services import Sidecar, TokenService
from tests.reliability.test_postgres_faults import _stop_postgres
from tests.sidecar import _stack
from tests.token_service.conftest import RedisServer
from tools import dashboard

from .test_prometheus_rules import RULES

pytestmark = [pytest.mark.observability, pytest.mark.postgres, pytest.mark.envoy, pytest.mark.timeout(150)]

SCALE = 60  # rule durations are divided by this in the test copy
WORKLOAD = {"namespace": "shop", "pod": "orders-0"}  # the sidecar and Envoy share the workload's pod
TOKEN_POD = {"namespace": "native-iam", "pod": "native-iam-token-0"}
PASSWORD = "Al1ce-observability-pass"


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def _scaled(duration: str) -> str:
    return f"{max(_seconds(duration) / SCALE, 1):g}s"


def scaled_rules(text: str) -> dict[str, Any]:
    """rules.yaml with every ``for:`` and group ``interval`` divided by :data:`SCALE`; exprs untouched."""
    rules = yaml.safe_load(text)
    for group in rules["groups"]:
        if "interval" in group:
            group["interval"] = _scaled(group["interval"])
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = _scaled(rule["for"])
    return rules


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/query", query=expr)["result"])

    def alerts(self) -> dict[str, str]:
        """Alert name → state (firing wins over pending)."""
        states: dict[str, str] = {}
        for alert in self.get("/api/v1/alerts")["alerts"]:
            name = alert["labels"]["alertname"]
            if states.get(name) != "firing":
                states[name] = alert["state"]
        return states

    def wait_firing(self, names: set[str], timeout: float, poke: Callable[[], None] = lambda: None) -> None:
        deadline = time.monotonic() + timeout
        while True:
            poke()
            firing = {n for n, state in self.alerts().items() if state == "firing"}
            if names <= firing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not firing after {timeout} s: {sorted(names - firing)}; alerts: {self.alerts()}")
            time.sleep(0.5)


@dataclass
class Stack:
    prometheus: Prometheus
    token_service: TokenService
    sidecar: Sidecar
    envoy_url: str
    postgres: Any
    token: str
    redis: RedisServer


def _target(port: int, labels: dict[str, str]) -> dict[str, Any]:
    return {"targets": [f"127.0.0.1:{port}"], "labels": labels}


def _prometheus_config(token_metrics: int, sidecar_metrics: int, envoy_admin: int, rules: Path) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": "native-iam-token", "static_configs": [_target(token_metrics, TOKEN_POD)]},
            {"job_name": "native-iam-sidecar", "static_configs": [_target(sidecar_metrics, WORKLOAD)]},
            {
                "job_name": "envoy",
                "metrics_path": "/stats/prometheus",
                "static_configs": [_target(envoy_admin, WORKLOAD)],
            },
        ],
    }


BASELINE_S = 3900  # a little over the 1 h window NativeIamDenyRateSpike measures its baseline over
BASELINE_RATE = {("allow", "token"): 2.0, ("deny", "expired"): 0.02}  # per second: 1 % denied


def backfill_baseline(promtool: str, tsdb: Path, labels: dict[str, str], until: float) -> None:
    """An hour of healthy decisions before ``until`` written into Prometheus's storage with
    ``promtool tsdb create-blocks-from openmetrics`` (the documented backfill), so the deny-spike
    rule has the hourly baseline a real deployment has. Own ``instance`` label: the live series
    are separate and the rules sum over both by namespace."""
    base = ",".join(f'{k}="{v}"' for k, v in {**labels, "instance": "baseline"}.items())
    lines = ["# TYPE native_iam_sidecar_decisions counter"]
    for t in range(int(until) - BASELINE_S, int(until), 15):
        elapsed = t - (int(until) - BASELINE_S)
        for (result, reason), rate in BASELINE_RATE.items():
            series = f'native_iam_sidecar_decisions_total{{{base},result="{result}",reason="{reason}"}}'
            lines.append(f"{series} {rate * elapsed} {t}")
    source = tsdb.parent / "baseline.om"
    source.write_text("\n".join(lines) + "\n# EOF\n")
    tsdb.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(tsdb)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _envoy_config(tmp: Path, *, listen: int, admin: int, authz: int, upstream: int) -> Path:
    path = _stack.envoy_config(tmp, listen=listen, authz=authz, upstream=upstream)
    config = yaml.safe_load(path.read_text())
    config["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    path.write_text(yaml.safe_dump(config))
    return path


def _http(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        return httpx.get(url, headers=headers, timeout=5).status_code
    except httpx.TransportError:  # not listening (yet)
        return 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = require_tool("prometheus")
    envoy_bin = require_tool("envoy")
    tmp = tmp_path_factory.mktemp("observability")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        postgres = pgserver.get_server(str(tmp / "pg"), cleanup_mode="delete")
    token_metrics = free_port()
    # With Redis (SYSTEM_CACHE_URL), so that its panels (cache errors, Redis latency) are proven too.
    redis = RedisServer(tmp / "redis")
    (tmp / "redis").mkdir()
    redis.start()
    token_service = TokenService(
        tmp,
        postgres.get_uri(),
        env={"NATIVE_IAM_METRICS_LISTEN": f"127.0.0.1:{token_metrics}", "SYSTEM_CACHE_URL": redis.url},
    )
    processes: list[Any] = []
    try:
        token_service.start()
        processes.append(token_service)
        admin_token = token_service.admin_token()
        token_service.create_identity(admin_token, "shop", "alice", PASSWORD, ("orders:read",))
        token = token_service.password_grant("alice", PASSWORD, namespace="shop", scopes=("orders:read",))
        sidecar = Sidecar(tmp, token_service.grpc_address).start()
        processes.append(sidecar)
        sidecar.process.wait_until(  # type: ignore[union-attr]
            lambda: sidecar.metric("native_iam_sidecar_ready") == 1, timeout=30, what="ready"
        )
        with _stack.echo_upstream() as upstream, _stack_envoy(envoy_bin, tmp, sidecar, upstream) as (envoy_url, admin):
            rules = tmp / "rules.yaml"
            rules.write_text(yaml.safe_dump(scaled_rules(RULES.read_text(encoding="utf-8"))))
            config = tmp / "prometheus.yml"
            config.write_text(yaml.safe_dump(_prometheus_config(token_metrics, sidecar.metrics_port, admin, rules)))
            backfill_baseline(
                require_tool("promtool"), tmp / "tsdb", {"job": "native-iam-sidecar", **WORKLOAD}, time.time() - 5
            )
            port = free_port()
            argv = [
                prometheus_bin,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ]
            server = Process("prometheus", argv, log_path=tmp / "prometheus.log").start()
            try:
                server.wait_until(lambda: _http(f"http://127.0.0.1:{port}/-/ready") == 200, timeout=60, what="ready")
                yield Stack(
                    Prometheus(f"http://127.0.0.1:{port}"),
                    token_service,
                    sidecar,
                    envoy_url,
                    postgres,
                    token.access_token,
                    redis,
                )
            finally:
                server.stop()
    finally:
        for process in reversed(processes):
            process.stop()
        redis.kill()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            postgres.cleanup()


def _stack_envoy(envoy_bin: str, tmp: Path, sidecar: Sidecar, upstream: int) -> Any:
    import contextlib

    @contextlib.contextmanager
    def run() -> Iterator[tuple[str, int]]:
        listen, admin = free_port(), free_port()
        config = _envoy_config(tmp, listen=listen, admin=admin, authz=sidecar.authz_port, upstream=upstream)
        with _stack.envoy(envoy_bin, config, listen) as url:
            yield url, admin

    return run()


def _traffic(stack: Stack) -> None:
    """Allowed and denied requests through Envoy, grants (one refused), a CheckAccess at the
    token service and an OAuth HTTP request: something for every panel to show."""
    bearer = {"authorization": f"Bearer {stack.token}"}
    for _ in range(5):
        assert _http(f"{stack.envoy_url}/orders/1", bearer) == 200
    assert _http(f"{stack.envoy_url}/orders/1") == 401
    stack.token_service.password_grant("alice", PASSWORD, namespace="shop", scopes=("orders:read",))
    stack.token_service.password_grant("alice", "wrong-password", namespace="shop")
    stack.token_service.check_access(stack.token)
    assert _http(f"{stack.token_service.http_url}/.well-known/jwks.json") == 200


def _variables(prometheus: Prometheus, board: dict[str, Any]) -> dict[str, str]:
    """Each template variable as Grafana substitutes a multi-value selection of all it offers:
    ``(a|b)``. The values come from the variable's own label_values query."""
    chosen: dict[str, str] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        selector, label = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["definition"]).groups()  # type: ignore[union-attr]
        for name, value in chosen.items():
            selector = selector.replace(f"${name}", value)
        values = prometheus.get(f"/api/v1/label/{label}/values", **{"match[]": selector})
        assert values, f"variable {variable['name']} offers nothing"
        # Grafana escapes regex characters for PromQL strings: a backslash, itself escaped.
        chosen[variable["name"]] = "(" + "|".join(re.sub(r"([.+*?()|\[\]{}^$])", r"\\\\\1", v) for v in values) + ")"
    return chosen


def _substituted(expr: str, variables: dict[str, str]) -> str:
    for name, value in variables.items():
        expr = expr.replace(f"${name}", value)
    return expr.replace("$__rate_interval", "15s")


def test_rule_copy_changes_only_durations() -> None:
    """The rules Prometheus evaluates here have the committed expressions, labels and names."""
    original = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    scaled = scaled_rules(RULES.read_text(encoding="utf-8"))
    for before, after in zip(original["groups"], scaled["groups"], strict=True):
        for a, b in zip(before["rules"], after["rules"], strict=True):
            assert {k: v for k, v in a.items() if k != "for"} == {k: v for k, v in b.items() if k != "for"}
    assert _scaled("5m") == "5s" and _scaled("1m") == "1s" and _scaled("30s") == "1s"


def test_every_dashboard_panel_returns_data(stack: Stack) -> None:
    """Every query of every panel, variables substituted, returns at least one series."""
    board = json.loads(dashboard.OUTPUT.read_text(encoding="utf-8"))
    queries = [(p["title"], t["expr"]) for p in dashboard.panels(board) for t in p["targets"]]
    deadline = time.monotonic() + 60
    empty: list[tuple[str, str]] = queries
    while True:
        _traffic(stack)
        try:
            variables = _variables(stack.prometheus, board)
        except AssertionError:
            variables = {}
        if variables:
            empty = [
                (title, expr) for title, expr in empty if not stack.prometheus.query(_substituted(expr, variables))
            ]
            if not empty:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"panels without data: {empty}")
        time.sleep(2)


def test_nothing_fires_on_a_healthy_stack(stack: Stack) -> None:
    """After every rule has been evaluated for longer than its scaled ``for:``, no alert fires
    (and none is pending)."""
    _traffic(stack)
    longest = max(
        _seconds(r.get("for", "0s")) / SCALE
        for g in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for r in g["rules"]
    )
    time.sleep(longest + 4)
    assert stack.prometheus.alerts() == {}


def _checks(stack: Stack, n: int, *, token: str | None = None, extensions: dict[str, str] | None = None) -> None:
    """``n`` ext_authz Checks straight at the sidecar, all denied."""
    from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

    request = external_auth_pb2.CheckRequest()
    request.attributes.request.http.method, request.attributes.request.http.path = "GET", "/orders/1"
    if token is not None:
        request.attributes.request.http.headers["authorization"] = f"Bearer {token}"
    request.attributes.context_extensions.update(extensions or {})
    with grpc.insecure_channel(f"127.0.0.1:{stack.sidecar.authz_port}") as channel:
        check = external_auth_pb2_grpc.AuthorizationStub(channel).Check
        for _ in range(n):
            assert check(request, timeout=5).status.code != 0


def test_deny_spike_fires(stack: Stack) -> None:
    """Over the backfilled hour of 1 % denies, a burst of bad tokens: NativeIamDenyRateSpike."""
    stack.prometheus.wait_firing({"NativeIamDenyRateSpike"}, timeout=60, poke=lambda: _checks(stack, 40, token="a.b.c"))


def test_invalid_route_fires_route_invalid(stack: Stack) -> None:
    stack.prometheus.wait_firing(
        {"NativeIamRouteInvalid"},
        timeout=40,
        poke=lambda: _checks(stack, 1, extensions={"scopes.bogus!": "orders:read"}),
    )


def _grant(stack: Stack) -> None:
    try:
        stack.token_service.password_grant("alice", PASSWORD, namespace="shop", scopes=("orders:read",))
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_redis_down_fires_cache_errors(stack: Stack) -> None:
    """Redis killed: password grants answer UNAVAILABLE (the lockout fails closed), counted as
    cache errors; NativeIamTokenServiceCacheErrors fires. Redis back for the steps after."""
    stack.redis.kill()
    try:
        stack.prometheus.wait_firing({"NativeIamTokenServiceCacheErrors"}, timeout=60, poke=lambda: _grant(stack))
    finally:
        stack.redis.start()


def test_database_down_fires_database_and_error_alerts(stack: Stack) -> None:
    """PostgreSQL stopped: grants answer UNAVAILABLE, counted as database errors and as
    server-side gRPC failures; both alerts fire."""
    _stop_postgres(stack.postgres)
    stack.prometheus.wait_firing(
        {"NativeIamTokenServiceDatabaseErrors", "NativeIamTokenServiceErrors"}, timeout=60, poke=lambda: _grant(stack)
    )


def test_token_service_killed_fires_absent_disconnected_then_stale(stack: Stack) -> None:
    """The token service killed: no replica scraped and the sidecar's feed disconnected at once;
    the feed stale once its lag passes the 30 s bound (the threshold is not scaled)."""
    stack.token_service.kill()
    killed = time.monotonic()
    stack.prometheus.wait_firing({"NativeIamTokenServiceAbsent", "NativeIamFeedDisconnected"}, timeout=40)
    stack.prometheus.wait_firing({"NativeIamFeedStale"}, timeout=70)
    assert time.monotonic() - killed >= 25  # the 30 s lag threshold itself (less a heartbeat), not a scaled one
