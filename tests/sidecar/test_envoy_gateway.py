"""End to end through a real Envoy configured the way Envoy Gateway configures it for a SecurityPolicy with
``extAuth.includeRouteMetadata``: each route carries ``filter_metadata["envoy-gateway"].resources[]`` with the
HTTPRoute's ``gateway.envoyproxy.io/`` annotations (prefix removed), and ext_authz sends that namespace. The
sidecar reads its ``native-iam-*`` annotations (docs/sidecar.md, "Envoy Gateway")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from . import _stack
from ._feed import FeedServer, Issuer
from .test_envoy import bearer, envoy_bin, module_feed, sidecar_env  # noqa: F401 - fixtures

pytestmark = pytest.mark.envoy


def _route(prefix: str, name: str, annotations: dict[str, str]) -> dict[str, Any]:
    """A route as Envoy Gateway translates an HTTPRoute (metadata under the envoy-gateway namespace)."""
    resource = {"kind": "HTTPRoute", "name": name, "namespace": "shop", "annotations": annotations}
    return {
        "match": {"path_separated_prefix": prefix} if prefix != "/" else {"prefix": "/"},
        "route": {"cluster": "workload"},
        "metadata": {"filter_metadata": {"envoy-gateway": {"resources": [resource]}}},
    }


@pytest.fixture(scope="module")
def gateway(
    envoy_bin: str,  # noqa: F811
    module_feed: FeedServer,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("envoy-gateway")
    with _stack.echo_upstream() as upstream, _stack.sidecar(tmp, sidecar_env(module_feed)) as ports:
        listen = _stack.free_port()
        path = _stack.envoy_config(tmp, listen=listen, authz=ports["authz"], upstream=upstream)
        config: dict[str, Any] = yaml.safe_load(path.read_text())
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["route_config"]["virtual_hosts"][0]["routes"] = [
            _route(
                "/orders",
                "orders",
                {"native-iam-scopes": "orders:read", "native-iam-scopes.POST": "orders:write", "team": "shop"},
            ),
            _route("/public", "orders-public", {"native-iam-anonymous": "true"}),
            _route("/broken", "orders-broken", {"native-iam-scope": "typo"}),
            _route("/", "rest", {}),
        ]
        for f in hcm["http_filters"]:
            if f["name"] == "envoy.filters.http.ext_authz":
                f["typed_config"]["route_metadata_context_namespaces"] = ["envoy-gateway"]
        path.write_text(yaml.safe_dump(config))
        with _stack.envoy(envoy_bin, path, listen) as url:
            yield url


@pytest.fixture
def http(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, timeout=5) as client:
        yield client


def test_annotated_scopes_decide(http: httpx.Client, issuer: Issuer) -> None:
    """native-iam-scopes and native-iam-scopes.POST: 401 without a token, 403 naming the scope, 200 with it."""
    assert http.get("/orders/1").status_code == 401
    r = http.get("/orders/1", headers=bearer(issuer.mint(scope="other")))
    assert r.status_code == 403 and 'scope="orders:read"' in r.headers["www-authenticate"]
    assert http.get("/orders/1", headers=bearer(issuer.mint(scope="orders:read"))).status_code == 200
    assert http.post("/orders", headers=bearer(issuer.mint(scope="orders:read"))).status_code == 403
    assert http.post("/orders", headers=bearer(issuer.mint(scope="orders:write"))).status_code == 200


def test_annotated_anonymous_route(http: httpx.Client) -> None:
    """native-iam-anonymous: "true" needs no token; a forged identity header does not reach the workload."""
    r = http.get("/public/x", headers={"x-native-iam-identity": "root"})
    assert r.status_code == 200 and "x-native-iam-identity" not in r.json()["headers"]


def test_unknown_annotation_is_route_invalid_not_open(http: httpx.Client, issuer: Issuer) -> None:
    """A typo in one of our annotations denies the route (500 route_invalid), even with a token."""
    r = http.get("/broken", headers=bearer(issuer.mint(scope="orders:read")))
    assert r.status_code == 500 and r.json()["error"] == "server_error"


def test_route_without_our_annotations_needs_a_valid_token(http: httpx.Client, issuer: Issuer) -> None:
    """Envoy Gateway metadata without native-iam-* annotations says nothing: any valid token."""
    assert http.get("/else").status_code == 401
    assert http.get("/else", headers=bearer(issuer.mint(scope=None))).status_code == 200
