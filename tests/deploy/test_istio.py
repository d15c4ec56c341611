"""deploy/k8s/components/istio (docs/istio.md): the example workload in an Istio mesh. The built-in objects
validate strictly with the other renderings (test_kustomize.py); Istio's custom resources have no schema
offline, so their fields are checked here, together with how they fit: the providers in mesh-config.yaml,
the ServiceEntry, the AuthorizationPolicy, the Deployment and the route table ConfigMap."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from sidecar import route_table_file

from .conftest import K8S, Rendering, containers

COMPONENT = K8S / "components" / "istio"


@pytest.fixture(scope="module")
def istio(renderings: dict[str, Rendering]) -> Rendering:
    return renderings["dev+istio"]


@pytest.fixture(scope="module")
def providers() -> dict[str, dict[str, Any]]:
    mesh = yaml.safe_load((COMPONENT / "mesh-config.yaml").read_text(encoding="utf-8"))
    assert mesh["apiVersion"] == "install.istio.io/v1alpha1" and mesh["kind"] == "IstioOperator"
    return {p["name"]: p for p in mesh["spec"]["meshConfig"]["extensionProviders"]}


def _sidecar(istio: Rendering) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(pod spec, native-iam container, its settings ConfigMap data)."""
    pod = istio.one("Deployment", "orders")["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "native-iam")
    settings = istio.one("ConfigMap", "orders-native-iam-sidecar")["data"]
    return pod, container, settings


def _port(listen: str) -> int:
    return int(listen.rpartition(":")[2])


def test_providers_point_at_the_pod_local_sidecar_and_fail_closed(
    istio: Rendering, providers: dict[str, dict[str, Any]]
) -> None:
    """Both providers (gRPC and HTTP) name the ServiceEntry's host and one of its ports, and never fail open; the
    gRPC one is the sidecar's NATIVE_IAM_AUTHZ_LISTEN port."""
    entry = istio.one("ServiceEntry", "native-iam-authz-local")["spec"]
    assert entry["resolution"] == "STATIC" and entry["endpoints"] == [{"address": "127.0.0.1"}]
    assert entry["exportTo"] == ["."]
    ports = {p["number"]: p["protocol"] for p in entry["ports"]}
    grpc, http = providers["native-iam-grpc"]["envoyExtAuthzGrpc"], providers["native-iam-http"]["envoyExtAuthzHttp"]
    for provider, protocol in ((grpc, "GRPC"), (http, "HTTP")):
        assert provider["service"] in entry["hosts"]
        assert ports[provider["port"]] == protocol
        assert provider["failOpen"] is False and provider["statusOnError"] == "503"
    _, _, settings = _sidecar(istio)
    assert grpc["port"] == _port(settings["NATIVE_IAM_AUTHZ_LISTEN"])
    assert http["port"] == _port(settings["NATIVE_IAM_AUTHZ_HTTP_LISTEN"])
    for listen in ("NATIVE_IAM_AUTHZ_LISTEN", "NATIVE_IAM_AUTHZ_HTTP_LISTEN"):
        assert settings[listen].startswith("127.0.0.1:")  # loopback: only this pod's proxy


def test_http_provider_forwards_the_identity_and_the_challenge(providers: dict[str, dict[str, Any]]) -> None:
    """The HTTP provider sends the token header, passes the identity headers upstream and the challenge downstream."""
    http = providers["native-iam-http"]["envoyExtAuthzHttp"]
    assert http["includeRequestHeadersInCheck"] == ["authorization"]
    assert set(http["headersToUpstreamOnAllow"]) == {
        "x-native-iam-identity",
        "x-native-iam-namespace",
        "x-native-iam-scopes",
        "x-native-iam-jti",
    }
    assert "www-authenticate" in http["headersToDownstreamOnDeny"]


def test_authorization_policy_is_custom_on_every_request_of_the_workload(
    istio: Rendering, providers: dict[str, dict[str, Any]]
) -> None:
    """action CUSTOM with a defined provider, selecting the orders pods, one empty rule (every request)."""
    policy = istio.one("AuthorizationPolicy", "orders-native-iam")
    assert policy["apiVersion"] == "security.istio.io/v1"
    spec = policy["spec"]
    assert spec["action"] == "CUSTOM" and spec["provider"]["name"] in providers
    assert spec["rules"] == [{}]
    labels = istio.one("Deployment", "orders")["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert policy["metadata"]["namespace"] == istio.one("Deployment", "orders")["metadata"]["namespace"]


def test_istio_proxy_replaces_the_workloads_envoy(istio: Rendering) -> None:
    """Injected istio-proxy; no Envoy container, config or volumes left; the Service targets the app's port."""
    deployment = istio.one("Deployment", "orders")
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    names = {c["name"] for c in containers(deployment)}
    assert names == {"app", "native-iam"}
    assert not [v for v in template["spec"]["volumes"] if v["name"].startswith("envoy")]
    assert not [c for c in istio.of_kind("ConfigMap") if c["metadata"]["name"].startswith("orders-envoy")]
    service = istio.one("Service", "orders")
    app = next(c for c in template["spec"]["containers"] if c["name"] == "app")
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in app["ports"]}
    assert all(not a.startswith("-listen=127.") for a in app["args"])  # Istio forwards inbound to the pod IP
    _, sidecar, _ = _sidecar(istio)
    assert sidecar["readinessProbe"]["exec"]["command"][-1] == "127.0.0.1:9191"  # SERVING, not --alive


def test_route_table_configmap_is_mounted_where_the_sidecar_reads_it(istio: Rendering) -> None:
    """NATIVE_IAM_ROUTE_TABLE_FILE is a file of the routes ConfigMap, mounted as a directory (no subPath, so
    updates arrive), the ConfigMap keeps its name (updated in place), and the table is valid."""
    pod, container, settings = _sidecar(istio)
    path = PurePosixPath(settings["NATIVE_IAM_ROUTE_TABLE_FILE"])
    mount = next(m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == path.parent)
    assert "subPath" not in mount and mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    configmap = istio.one("ConfigMap", "orders-native-iam-routes")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"] == "orders-native-iam-routes"
    table = route_table_file.parse(configmap["data"][path.name])
    assert table.match("orders", "GET", "/health").requirement.default.anonymous  # type: ignore[union-attr]
    assert table.match("orders", "GET", "/orders/7") is not None
