"""examples/envoy-gateway: the SecurityPolicy and HTTPRoutes have the shape Envoy Gateway expects
(no CRD schemas offline, so the fields are checked here) and their annotations are requirements the
sidecar parses as promised (docs/sidecar.md, "Envoy Gateway")."""

from __future__ import annotations

from typing import Any

import yaml

from sidecar import requirements

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "envoy-gateway"
PREFIX = "gateway.envoyproxy.io/"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLE / name).read_text(encoding="utf-8")) if d]


def _as_envoy_gateway_sends_it(route: dict[str, Any]) -> dict[str, Any]:
    """The route metadata Envoy Gateway builds from an HTTPRoute: its gateway.envoyproxy.io/ annotations,
    prefix removed, under resources[] (docs of Envoy Gateway's "Gateway API Metadata")."""
    meta = route["metadata"]
    annotations = {k.removeprefix(PREFIX): v for k, v in meta.get("annotations", {}).items() if k.startswith(PREFIX)}
    return {
        "resources": [
            {"kind": route["kind"], "name": meta["name"], "namespace": meta["namespace"], "annotations": annotations}
        ]
    }


def test_security_policy_sends_route_metadata_and_fails_closed() -> None:
    """The SecurityPolicy targets both HTTPRoutes, sends route metadata, forwards the token header, never fails open."""
    [policy] = _docs("securitypolicy.yaml")
    routes = _docs("httproute.yaml")
    assert policy["apiVersion"] == "gateway.envoyproxy.io/v1alpha1" and policy["kind"] == "SecurityPolicy"
    targets = {(t["group"], t["kind"], t["name"]) for t in policy["spec"]["targetRefs"]}
    assert targets == {("gateway.networking.k8s.io", "HTTPRoute", r["metadata"]["name"]) for r in routes}
    assert all(r["metadata"]["namespace"] == policy["metadata"]["namespace"] for r in routes)
    ext = policy["spec"]["extAuth"]
    assert ext["includeRouteMetadata"] is True
    assert ext["failOpen"] is False
    assert ext["headersToExtAuth"] == ["authorization"]
    assert ext["grpc"]["backendRefs"] == [{"name": "native-iam-authz", "port": 9191}]


def test_http_routes_are_gateway_api_v1() -> None:
    """Both HTTPRoutes are gateway.networking.k8s.io/v1 with parentRefs, matches and backendRefs."""
    for route in _docs("httproute.yaml"):
        assert route["apiVersion"] == "gateway.networking.k8s.io/v1" and route["kind"] == "HTTPRoute"
        assert route["spec"]["parentRefs"] and route["spec"]["rules"]
        for rule in route["spec"]["rules"]:
            assert rule["matches"] and rule["backendRefs"]


def test_route_annotations_are_the_requirements_the_sidecar_reads() -> None:
    """orders: orders:read, POST orders:write, DELETE admin or delete+write; orders-public: anonymous."""
    parsed = {
        r["metadata"]["name"]: requirements.parse(None, None, _as_envoy_gateway_sends_it(r))
        for r in _docs("httproute.yaml")
    }
    orders = parsed["orders"]
    assert orders.for_method("GET").alternatives == (frozenset({"orders:read"}),)
    assert orders.for_method("POST").alternatives == (frozenset({"orders:write"}),)
    assert set(orders.for_method("DELETE").alternatives) == {
        frozenset({"orders:admin"}),
        frozenset({"orders:delete", "orders:write"}),
    }
    assert parsed["orders-public"].for_method("GET").anonymous
