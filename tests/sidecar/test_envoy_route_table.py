"""End to end through a real Envoy that sends NO route requirement (no route metadata, no context
extensions, no per-route requirement header: what Istio's providers give the sidecar): the sidecar's
route table (NATIVE_IAM_ROUTE_TABLE_FILE, docs/route-table.md) alone drives allow, 401, 403 and
anonymous, over both transports (gRPC and HTTP), and a changed file is picked up without a restart."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from . import _stack
from ._feed import FeedServer, Issuer
from .test_envoy import TRANSPORTS, bearer, envoy_bin, module_feed, sidecar_env  # noqa: F401 - fixtures

pytestmark = pytest.mark.envoy

TABLE = """\
routes:
  - match: {path: /healthz}
    require: {anonymous: true}
  - match: {template: "/orders/{id}"}
    require:
      scopes: orders:read
      methods: {DELETE: {scopes: orders:admin}}
  - match: {prefix: /orders, methods: [POST]}
    require: {scopes: orders:write}
  - match: {prefix: /reports}
    require: {}
"""


def _without_route_context(source: Path, tmp: Path, *, listen: int, authz: int, upstream: int) -> Path:
    """An example Envoy config with every route's metadata and per-route ext_authz settings removed,
    and no route_metadata_context_namespaces: the check carries no route requirement at all (over
    HTTP only the filter's own `x-native-iam-requirement: {}`, which says nothing)."""
    config: dict[str, Any] = yaml.safe_load(
        _stack.envoy_config(tmp, listen=listen, authz=authz, upstream=upstream, source=source).read_text()
    )
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for vhost in hcm["route_config"]["virtual_hosts"]:
        vhost["routes"] = [{"match": {"prefix": "/"}, "route": {"cluster": "workload"}}]
    for f in hcm["http_filters"]:
        f.get("typed_config", {}).pop("route_metadata_context_namespaces", None)
    path = tmp / f"envoy-no-route-context-{listen}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def table_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("routes") / "routes.yaml"
    path.write_text(TABLE)
    return path


@pytest.fixture(scope="module", params=sorted(TRANSPORTS))
def gateway(
    request: pytest.FixtureRequest,
    envoy_bin: str,  # noqa: F811
    module_feed: FeedServer,  # noqa: F811
    table_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    port_name, example = TRANSPORTS[request.param]
    tmp = tmp_path_factory.mktemp(f"envoy-table-{request.param}")
    env = sidecar_env(module_feed, NATIVE_IAM_ROUTE_TABLE_FILE=str(table_file))
    with _stack.echo_upstream() as upstream, _stack.sidecar(tmp, env) as ports:
        listen = _stack.free_port()
        config = _without_route_context(example, tmp, listen=listen, authz=ports[port_name], upstream=upstream)
        text = config.read_text()
        for said in ("filter_metadata", "context_extensions", "route_metadata_context_namespaces", "orders:"):
            assert said not in text
        with _stack.envoy(envoy_bin, config, listen) as url:
            yield url


@pytest.fixture
def http(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, timeout=5) as client:
        yield client


def test_table_rule_allows_with_identity_headers(http: httpx.Client, issuer: Issuer) -> None:
    """GET /orders/7 matches the template rule: orders:read passes and the workload sees the identity."""
    r = http.get("/orders/7?expand=lines", headers=bearer(issuer.mint("alice", "orders:read", namespace="shop")))
    assert r.status_code == 200, r.text
    assert r.json()["headers"]["x-native-iam-identity"] == "alice"


def test_table_rule_missing_scope_is_403_naming_it(http: httpx.Client, issuer: Issuer) -> None:
    """A token without the rule's scope: 403 insufficient_scope with scope="…" from the table."""
    r = http.get("/orders/7", headers=bearer(issuer.mint(scope="orders:list")))
    assert r.status_code == 403 and 'scope="orders:read"' in r.headers["www-authenticate"]
    r = http.delete("/orders/7", headers=bearer(issuer.mint(scope="orders:read")))
    assert r.status_code == 403 and 'scope="orders:admin"' in r.headers["www-authenticate"]


def test_table_rule_without_token_is_401(http: httpx.Client) -> None:
    """No token on a protected table route: 401 with the Bearer challenge."""
    r = http.get("/orders/7")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="native-iam"'


def test_table_method_rule(http: httpx.Client, issuer: Issuer) -> None:
    """POST /orders matches the methods: [POST] prefix rule (orders:write)."""
    assert http.post("/orders", headers=bearer(issuer.mint(scope="orders:read"))).status_code == 403
    assert http.post("/orders", headers=bearer(issuer.mint(scope="orders:write"))).status_code == 200


def test_table_anonymous_rule(http: httpx.Client) -> None:
    """/healthz is anonymous in the table: no token, forged identity headers removed."""
    r = http.get("/healthz", headers={"x-native-iam-identity": "root"})
    assert r.status_code == 200 and "x-native-iam-identity" not in r.json()["headers"]


def test_unmatched_path_is_403_even_with_a_valid_token(http: httpx.Client, issuer: Issuer) -> None:
    """No rule for /admin (and case-sensitive: /ORDERS/7 is not /orders/{id}): 403, token or not."""
    assert http.get("/admin").status_code == 403
    assert http.get("/admin", headers=bearer(issuer.mint(scope="orders:read admin"))).status_code == 403
    assert http.get("/ORDERS/7", headers=bearer(issuer.mint(scope="orders:read"))).status_code == 403
    assert http.get("/ordersx", headers=bearer(issuer.mint(scope="orders:write"))).status_code == 403


def test_changed_file_is_used_without_restart_and_bad_file_keeps_the_last_good(
    http: httpx.Client, issuer: Issuer, table_file: Path
) -> None:
    """Good → bad → good: a bad version keeps the last good table; the next good one applies."""
    token = bearer(issuer.mint(scope="orders:read"))
    assert http.get("/reports/q1", headers=token).status_code == 200

    def write(text: str) -> None:
        tmp = table_file.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, table_file)

    def eventually(path: str, status: int) -> None:
        deadline = time.monotonic() + 15
        while (got := http.get(path, headers=token).status_code) != status:
            assert time.monotonic() < deadline, f"{path}: still {got}, expected {status}"
            time.sleep(0.2)

    try:
        write(TABLE + "  - match: {prefix: /reports}\n    require: {scope: typo}\n")  # invalid
        time.sleep(2.5)  # more than two polls
        assert http.get("/reports/q1", headers=token).status_code == 200  # the last good table
        write(TABLE.replace("require: {}", "require: {scopes: reports:read}"))
        eventually("/reports/q1", 403)
    finally:
        write(TABLE)
    eventually("/reports/q1", 200)
