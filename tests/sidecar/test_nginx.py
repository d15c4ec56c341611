"""End to end through nginx ``auth_request`` (examples/nginx/) and the sidecar's HTTP transport.

nginx runs from the example config on free loopback ports with a temporary prefix, in the
foreground (``daemon off``), and is stopped after the module.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest

from ..conftest import require_tool
from . import _stack
from ._feed import FeedServer, Issuer
from .test_envoy import bearer, module_feed, sidecar_env
from .test_envoy_paths import send

__all__ = ["module_feed"]
EXAMPLE = _stack.ROOT / "examples" / "nginx"


@pytest.fixture(scope="module")
def gateway(module_feed: FeedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    nginx = require_tool("nginx")
    tmp = tmp_path_factory.mktemp("nginx")
    with _stack.echo_upstream() as upstream, _stack.sidecar(tmp, sidecar_env(module_feed)) as ports:
        listen = _stack.free_port()
        prefix = tmp / "prefix"
        (prefix / "tmp").mkdir(parents=True)
        shutil.copy(EXAMPLE / "native-iam-auth.conf", prefix / "native-iam-auth.conf")
        text = (EXAMPLE / "nginx.conf").read_text()
        text = text.replace("127.0.0.1:9193", f"127.0.0.1:{ports['authz_http']}")
        text = text.replace("127.0.0.1:8080", f"127.0.0.1:{upstream}")
        text = text.replace("127.0.0.1:10000", f"127.0.0.1:{listen}")
        config = prefix / "nginx.conf"
        config.write_text(text)
        proc = _stack.Proc([nginx, "-p", str(prefix), "-c", str(config), "-g", "daemon off;"], tmp / "nginx.log")
        try:
            proc.wait(lambda: _stack.port_open(listen), "listening")
            yield f"http://127.0.0.1:{listen}"
        finally:
            proc.stop()


@pytest.fixture
def http(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, timeout=5) as client:
        yield client


def test_allowed_request_reaches_upstream_with_identity_headers(http: httpx.Client, issuer: Issuer) -> None:
    token = issuer.mint("alice", "orders:read", namespace="shop", jti="nginx-1")
    r = http.get("/orders/1", headers={**bearer(token), "x-native-iam-identity": "root"})
    assert r.status_code == 200, r.text
    headers = r.json()["headers"]
    assert headers["x-native-iam-identity"] == "alice" and headers["x-native-iam-namespace"] == "shop"
    assert headers["x-native-iam-scopes"] == "orders:read" and headers["x-native-iam-jti"] == "nginx-1"


def test_no_token_is_401_with_the_sidecars_challenge(http: httpx.Client) -> None:
    r = http.get("/orders/1")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="native-iam"'


def test_missing_scope_is_403_naming_the_scope(http: httpx.Client, issuer: Issuer) -> None:
    r = http.post("/orders", headers=bearer(issuer.mint(scope="orders:read")))
    assert r.status_code == 403 and 'scope="orders:write"' in r.headers["www-authenticate"]
    assert http.get("/admin", headers=bearer(issuer.mint(scope="orders:read"))).status_code == 403
    assert http.get("/admin", headers=bearer(issuer.mint(scope="admin"))).status_code == 200


def test_anonymous_location_clears_forged_identity_headers(http: httpx.Client) -> None:
    r = http.get("/healthz", headers={"x-native-iam-identity": "root"})
    assert r.status_code == 200 and "x-native-iam-identity" not in r.json()["headers"]


def test_default_location_needs_a_valid_token_and_a_client_cannot_loosen_it(http: httpx.Client, issuer: Issuer) -> None:
    loose = {"x-native-iam-requirement": '{"anonymous": true}'}
    assert http.get("/anything", headers=loose).status_code == 401
    assert http.get("/orders/1", headers=loose).status_code == 401
    assert http.get("/anything", headers=bearer(issuer.mint(scope=None))).status_code == 200


@pytest.mark.parametrize("target", ["/%61dmin", "/healthz/../admin", "/orders/..%2fadmin", "//admin"])
def test_encoded_and_dotted_paths_never_reach_the_workload(gateway: str, issuer: Issuer, target: str) -> None:
    """nginx routes on the decoded path but forwards the raw one: the sidecar refuses the raw one
    unless it is normalised, so such a request never reaches a handler (nginx answers 400 or 500)."""
    port = int(gateway.rsplit(":", 1)[1])
    token = issuer.mint(scope="orders:read")
    reply = send(port, "GET", target, [("authorization", f"Bearer {token}")])
    assert reply.status in (400, 403, 500) and reply.served is None, (target, reply.status)
