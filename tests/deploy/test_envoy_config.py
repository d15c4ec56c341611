"""The example workload's Envoy configuration, exactly as deployed (taken from the rendered
ConfigMap): Envoy accepts it, and it wires ext_authz to the sidecar the way docs/kubernetes.md says."""

from __future__ import annotations

import re
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool

from .conftest import ROOT, Rendering

EXT_AUTHZ = "envoy.filters.http.ext_authz"
PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"


@pytest.fixture(scope="module")
def envoy_yaml(renderings: dict[str, Rendering]) -> str:
    configmap = renderings["overlays/dev"].one("ConfigMap", "orders-envoy")
    return str(configmap["data"]["envoy.yaml"])


@pytest.fixture(scope="module")
def config(envoy_yaml: str) -> dict[str, Any]:
    return yaml.safe_load(envoy_yaml)


def envoy_validate(path: Path) -> subprocess.CompletedProcess[str]:
    envoy = require_tool("envoy")
    return subprocess.run(
        [envoy, "--mode", "validate", "-c", str(path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _listener(config: dict[str, Any], name: str) -> dict[str, Any]:
    listener = next(lis for lis in config["static_resources"]["listeners"] if lis["name"] == name)
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def _ext_authz(config: dict[str, Any]) -> dict[str, Any]:
    filters = _listener(config, "ingress")["http_filters"]
    return next(f["typed_config"] for f in filters if f["name"] == EXT_AUTHZ)


def _routes(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    hosts = _listener(config, "ingress")["route_config"]["virtual_hosts"]
    return {route["name"]: route for host in hosts for route in host["routes"]}


def _cluster_address(config: dict[str, Any], name: str) -> tuple[str, int]:
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == name)
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    return address["address"], address["port_value"]


@pytest.mark.envoy
def test_envoy_accepts_the_deployed_config(envoy_yaml: str, tmp_path: Path) -> None:
    """`envoy --mode validate` accepts the Envoy config the dev overlay deploys."""
    path = tmp_path / "envoy.yaml"
    path.write_text(envoy_yaml)
    result = envoy_validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.envoy
def test_envoy_validate_rejects_a_route_to_a_missing_cluster(envoy_yaml: str, tmp_path: Path) -> None:
    """The validation can fail: the same config with a route to an unknown cluster is rejected."""
    path = tmp_path / "envoy.yaml"
    path.write_text(envoy_yaml.replace("route: { cluster: app }", "route: { cluster: no_such_cluster }", 1))
    result = envoy_validate(path)
    assert result.returncode != 0
    assert "no_such_cluster" in result.stdout + result.stderr


def test_every_referenced_cluster_exists(config: dict[str, Any]) -> None:
    """ext_authz's gRPC cluster and the health filter's clusters exist (envoy --mode validate checks neither)."""
    clusters = {c["name"] for c in config["static_resources"]["clusters"]}
    referenced: set[str] = set()
    for key, value in _walk(config["static_resources"]["listeners"]):
        if key in {"cluster", "cluster_name"} and isinstance(value, str):
            referenced.add(value)
        elif key == "cluster_min_healthy_percentages":
            referenced |= set(value)
    assert {"native_iam_authz", "app"} <= referenced
    assert referenced <= clusters


def test_ext_authz_calls_the_sidecar_on_loopback_and_fails_closed(config: dict[str, Any]) -> None:
    """ext_authz: gRPC to 127.0.0.1:9191, failure_mode_allow false, an explicit status_on_error, route metadata
    namespace native_iam."""
    ext_authz = _ext_authz(config)
    assert _cluster_address(config, ext_authz["grpc_service"]["envoy_grpc"]["cluster_name"]) == ("127.0.0.1", 9191)
    assert ext_authz["failure_mode_allow"] is False
    assert ext_authz["status_on_error"]["code"] == "ServiceUnavailable"
    assert ext_authz["route_metadata_context_namespaces"] == ["native_iam"]
    assert ext_authz["transport_api_version"] == "V3"


def test_client_supplied_identity_headers_are_dropped_before_ext_authz(config: dict[str, Any]) -> None:
    """A header_mutation filter ahead of ext_authz removes every identity header the sidecar sets, so the app never
    sees a client's forgery."""
    names = [f["name"] for f in _listener(config, "ingress")["http_filters"]]
    assert names.index("envoy.filters.http.header_mutation") < names.index(EXT_AUTHZ)
    mutation = _listener(config, "ingress")["http_filters"][names.index("envoy.filters.http.header_mutation")]
    removed = {m["remove"] for m in mutation["typed_config"]["mutations"]["request_mutations"]}
    assert removed == {
        "x-native-iam-identity",
        "x-native-iam-namespace",
        "x-native-iam-scopes",
        "x-native-iam-jti",
        "x-native-iam-client",
    }


def test_routes_carry_scopes_in_both_forms(config: dict[str, Any]) -> None:
    """One route names its scopes in route metadata (native_iam), another in ExtAuthzPerRoute context_extensions key
    `scopes`."""
    routes = _routes(config)
    assert routes["orders-read"]["metadata"]["filter_metadata"]["native_iam"] == {"scopes": ["orders:read"]}
    per_route = routes["orders-write"]["typed_per_filter_config"][EXT_AUTHZ]
    assert per_route["@type"] == PER_ROUTE
    assert per_route["check_settings"]["context_extensions"] == {"scopes": "orders:write"}


def test_route_requirements_mean_what_the_comments_say(config: dict[str, Any]) -> None:
    """sidecar/requirements.py reads each route as documented: orders:read for GET /orders, orders:write otherwise, any
    valid token on /."""
    from sidecar import requirements

    parsed = {}
    for name, route in _routes(config).items():
        metadata = route.get("metadata", {}).get("filter_metadata", {}).get("native_iam")
        per_route = route.get("typed_per_filter_config", {}).get(EXT_AUTHZ, {})
        extensions = per_route.get("check_settings", {}).get("context_extensions")
        parsed[name] = requirements.parse(metadata, extensions)  # raises RequirementError on a bad route
    assert parsed["orders-read"].for_method("GET").alternatives == (frozenset({"orders:read"}),)
    assert parsed["orders-write"].for_method("POST").alternatives == (frozenset({"orders:write"}),)
    assert parsed["default"] == requirements.DEFAULT
    # /public never reaches the sidecar: ext_authz is disabled on that route.
    assert _routes(config)["public"]["typed_per_filter_config"][EXT_AUTHZ] == {"@type": PER_ROUTE, "disabled": True}


def test_readiness_requires_both_sidecar_and_app_healthy(config: dict[str, Any]) -> None:
    """The ops listener answers /ready only when 100% of the sidecar and app clusters pass active health checks (gRPC
    health for the sidecar)."""
    filters = _listener(config, "ops")["http_filters"]
    health = next(f["typed_config"] for f in filters if f["name"] == "envoy.filters.http.health_check")
    assert health["pass_through_mode"] is False
    assert health["headers"] == [{"name": ":path", "string_match": {"exact": "/ready"}}]
    assert health["cluster_min_healthy_percentages"] == {"native_iam_authz": {"value": 100}, "app": {"value": 100}}
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    assert "grpc_health_check" in clusters["native_iam_authz"]["health_checks"][0]
    assert "http_health_check" in clusters["app"]["health_checks"][0]


def _seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def test_health_checks_do_not_wait_for_traffic(config: dict[str, Any]) -> None:
    """Every active health check re-checks a not-yet-used or unhealthy host within its interval.

    Envoy's default no_traffic_interval is 60 s: without an explicit one the pod would stay unready for a
    minute after the sidecar became ready (found by test_example_workload)."""
    checks = [hc for c in config["static_resources"]["clusters"] for hc in c.get("health_checks", [])]
    assert len(checks) == 2
    for check in checks:
        interval = _seconds(check["interval"])
        assert _seconds(check["no_traffic_interval"]) <= interval
        assert _seconds(check["unhealthy_interval"]) <= interval


def test_pod_probes_and_ports_match_the_envoy_config(renderings: dict[str, Rendering], config: dict[str, Any]) -> None:
    """The kubelet probes Envoy's /ready on the ops listener, the Service targets the ingress listener, and the app
    listens where the app cluster points."""
    dev = renderings["overlays/dev"]
    pod = dev.one("Deployment", "orders")["spec"]["template"]["spec"]
    by_name = {c["name"]: c for c in pod["containers"]}
    envoy_ports = {p["name"]: p["containerPort"] for p in by_name["envoy"]["ports"]}
    listeners = {
        lis["name"]: lis["address"]["socket_address"]["port_value"] for lis in config["static_resources"]["listeners"]
    }
    probe = by_name["envoy"]["readinessProbe"]["httpGet"]
    assert (probe["path"], envoy_ports[probe["port"]]) == ("/ready", listeners["ops"])
    target = dev.one("Service", "orders")["spec"]["ports"][0]["targetPort"]
    assert envoy_ports[target] == listeners["ingress"]
    host, port = _cluster_address(config, "app")
    assert f"-listen={host}:{port}" in by_name["app"]["args"]
    sidecar_env = dev.one("ConfigMap", "orders-native-iam-sidecar")["data"]
    assert sidecar_env["NATIVE_IAM_AUTHZ_LISTEN"] == "{}:{}".format(*_cluster_address(config, "native_iam_authz"))


def test_documented_route_forms_are_the_deployed_ones(config: dict[str, Any]) -> None:
    """The route-scope YAML in docs/kubernetes.md is exactly what the deployed routes carry."""
    section = (ROOT / "docs" / "kubernetes.md").read_text(encoding="utf-8")
    # The one YAML block that shows a route's scopes (the page has other YAML: the workload example).
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL) if "typed_per_filter_config" in b]
    documented = yaml.safe_load(textwrap.dedent(block))
    routes = _routes(config)
    assert documented["metadata"] == routes["orders-read"]["metadata"]
    assert documented["typed_per_filter_config"] == routes["orders-write"]["typed_per_filter_config"]
