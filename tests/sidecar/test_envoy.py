"""End to end through a real Envoy (examples/envoy/envoy.yaml) and the ``native-iam sidecar`` process.

The token service is the in-test Feed server here (tests/sidecar/_feed.py), speaking feed.proto;
test_e2e_token_service.py repeats the core flows with the real token service.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from native_iam.oauth.v1 import feed_pb2

from ..conftest import require_tool
from . import _stack
from ._feed import AUDIENCE, ISSUER, FeedServer, Issuer
from .conftest import wait_for

pytestmark = pytest.mark.envoy
T, R = feed_pb2.RevocationTarget, feed_pb2.RevocationReason


def sidecar_env(feed: FeedServer, **extra: str) -> dict[str, str]:
    return {
        "NATIVE_IAM_TOKEN_URL": feed.address,
        "NATIVE_IAM_ISSUER": ISSUER,
        "NATIVE_IAM_ACCEPTED_AUDIENCES": AUDIENCE,
        **extra,
    }


@pytest.fixture(scope="module")
def envoy_bin() -> str:
    return require_tool("envoy")


@pytest.fixture(scope="module")
def module_feed(issuer: Issuer) -> Iterator[FeedServer]:
    feed = FeedServer(issuer).start()
    yield feed
    feed.stop()


#: Each transport with its example config: the same routes, so every test here runs over both.
TRANSPORTS = {"grpc": ("authz", _stack.EXAMPLE), "http": ("authz_http", _stack.EXAMPLE_HTTP)}


@pytest.fixture(scope="module", params=sorted(TRANSPORTS))
def gateway(
    request: pytest.FixtureRequest, envoy_bin: str, module_feed: FeedServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port_name, example = TRANSPORTS[request.param]
    tmp = tmp_path_factory.mktemp(f"envoy-{request.param}")
    with _stack.echo_upstream() as upstream, _stack.sidecar(tmp, sidecar_env(module_feed)) as ports:
        listen = _stack.free_port()
        config = _stack.envoy_config(tmp, listen=listen, authz=ports[port_name], upstream=upstream, source=example)
        with _stack.envoy(envoy_bin, config, listen) as url:
            yield url


@pytest.fixture
def http(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, timeout=5) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_allowed_request_reaches_upstream_with_identity_headers(http: httpx.Client, issuer: Issuer) -> None:
    """A valid token with the route's scope reaches the workload with identity headers set."""
    r = http.get("/orders/1", headers={**bearer(issuer.mint("alice", "orders:read", namespace="shop", jti="e2e-1"))})
    assert r.status_code == 200, r.text
    headers = r.json()["headers"]
    assert headers["x-native-iam-identity"] == "alice" and headers["x-native-iam-namespace"] == "shop"
    assert headers["x-native-iam-scopes"] == "orders:read" and headers["x-native-iam-jti"] == "e2e-1"


def test_forged_identity_header_is_overwritten(http: httpx.Client, issuer: Issuer) -> None:
    """A client cannot choose the identity the workload sees."""
    r = http.get("/orders/1", headers={**bearer(issuer.mint("alice")), "x-native-iam-identity": "root"})
    assert r.json()["headers"]["x-native-iam-identity"] == "alice"


def test_no_token_is_401_with_bearer_challenge(http: httpx.Client) -> None:
    """No token → 401 with WWW-Authenticate: Bearer realm and no error code."""
    r = http.get("/orders/1")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="native-iam"'


def test_bad_token_is_401_invalid_token(http: httpx.Client) -> None:
    """A bad token → 401 invalid_token with a JSON body saying so."""
    r = http.get("/orders/1", headers=bearer("eyJhbGciOiJFUzI1NiJ9.e30.c2ln"))
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    assert r.json()["error"] == "invalid_token"


def test_missing_scope_is_403_insufficient_scope(http: httpx.Client, issuer: Issuer) -> None:
    """POST /orders needs orders:write: a read-only token gets 403 naming the scope."""
    r = http.post("/orders", headers=bearer(issuer.mint(scope="orders:read")))
    assert r.status_code == 403 and 'scope="orders:write"' in r.headers["www-authenticate"]
    assert r.json()["error"] == "insufficient_scope"


def test_any_of_alternative_passes(http: httpx.Client, issuer: Issuer) -> None:
    """DELETE /orders passes with the second alternative (orders:delete + orders:write)."""
    r = http.delete("/orders/1", headers=bearer(issuer.mint(scope="orders:delete orders:write")))
    assert r.status_code == 200


def test_anonymous_route_needs_no_token(http: httpx.Client) -> None:
    """/healthz is anonymous: no token needed, and forged identity headers are stripped."""
    r = http.get("/healthz", headers={"x-native-iam-identity": "root"})
    assert r.status_code == 200 and "x-native-iam-identity" not in r.json()["headers"]


def test_context_extensions_scopes(http: httpx.Client, issuer: Issuer) -> None:
    """/admin's requirement comes from ExtAuthzPerRoute context_extensions."""
    assert http.get("/admin", headers=bearer(issuer.mint(scope="orders:read"))).status_code == 403
    assert http.get("/admin", headers=bearer(issuer.mint(scope="admin"))).status_code == 200


def test_context_extensions_anonymous(http: httpx.Client) -> None:
    """/docs is anonymous through context_extensions."""
    assert http.get("/docs/index.html").status_code == 200


def test_default_route_needs_any_valid_token(http: httpx.Client, issuer: Issuer) -> None:
    """A route that says nothing accepts any valid token and refuses none."""
    assert http.get("/anything", headers=bearer(issuer.mint(scope=None))).status_code == 200
    assert http.get("/anything").status_code == 401


def test_revoked_token_is_denied_within_one_second(http: httpx.Client, issuer: Issuer, module_feed: FeedServer) -> None:
    """A revocation pushed on the feed turns the token's 200 into 401 within 1 s."""
    jti = f"e2e-revoke-{uuid.uuid4().hex[:8]}"  # one per transport: the feed is shared
    token = issuer.mint(jti=jti)
    assert http.get("/orders/1", headers=bearer(token)).status_code == 200
    module_feed.publish(T.TOKEN, R.TOKEN_DISABLED, jti=jti)
    started = time.monotonic()
    while http.get("/orders/1", headers=bearer(token)).status_code == 200:
        assert time.monotonic() - started < 1.0, "still allowed 1 s after the revocation"
        time.sleep(0.01)
    assert http.get("/orders/1", headers=bearer(token)).status_code == 401


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
@pytest.mark.parametrize("policy", ["closed", "open"])
def test_feed_gone_valid_tokens_pass_until_staleness_bound_then_policy(
    policy: str, transport: str, envoy_bin: str, issuer: Issuer, tmp_path: Path
) -> None:
    """With the feed stopped, valid tokens pass until the bound; then closed → 503, open → still 200."""
    bound = 1.5
    feed = FeedServer(issuer).start()
    env = sidecar_env(feed, NATIVE_IAM_FEED_MAX_STALENESS_S=str(bound), NATIVE_IAM_FEED_STALE_POLICY=policy)
    try:
        with _stack.echo_upstream() as upstream, _stack.sidecar(tmp_path, env) as ports:
            listen = _stack.free_port()
            port_name, example = TRANSPORTS[transport]
            config = _stack.envoy_config(
                tmp_path, listen=listen, authz=ports[port_name], upstream=upstream, source=example
            )
            with _stack.envoy(envoy_bin, config, listen) as url, httpx.Client(base_url=url, timeout=5) as http:
                token = issuer.mint(scope="orders:read")
                assert http.get("/orders/1", headers=bearer(token)).status_code == 200
                feed.stop()
                stopped = time.monotonic()
                fresh_token = issuer.mint(scope="orders:read")  # never seen: verified from cached keys
                assert http.get("/orders/1", headers=bearer(fresh_token)).status_code == 200
                assert time.monotonic() - stopped < bound
                time.sleep(bound + 0.5)
                late = http.get("/orders/1", headers=bearer(token))
                if policy == "closed":
                    assert late.status_code == 503
                    # Envoy takes any 5xx from an HTTP authorization server for a failed call: it
                    # answers status_on_error (503 here) without the sidecar's body (docs/sidecar.md).
                    if transport == "grpc":
                        assert late.json()["error"] == "temporarily_unavailable"
                else:
                    assert late.status_code == 200
    finally:
        feed.stop()


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_two_sync_workers_through_envoy(transport: str, envoy_bin: str, issuer: Issuer, tmp_path: Path) -> None:
    """NATIVE_IAM_WORKERS=2 (ext_authz servers sharing the ports): allows, denies and revokes alike."""
    feed = FeedServer(issuer).start()
    try:
        with (
            _stack.echo_upstream() as upstream,
            _stack.sidecar(tmp_path, sidecar_env(feed, NATIVE_IAM_WORKERS="2")) as ports,
        ):
            assert wait_for(lambda: len(feed.watch_requests) >= 2)
            time.sleep(0.3)  # both workers synced
            listen = _stack.free_port()
            port_name, example = TRANSPORTS[transport]
            config = _stack.envoy_config(
                tmp_path, listen=listen, authz=ports[port_name], upstream=upstream, source=example
            )
            with _stack.envoy(envoy_bin, config, listen) as url, httpx.Client(base_url=url, timeout=5) as http:
                token = issuer.mint(scope="orders:read", jti="two-workers")
                assert http.get("/orders/1", headers=bearer(token)).status_code == 200
                assert http.post("/orders", headers=bearer(token)).status_code == 403
                feed.publish(T.TOKEN, R.TOKEN_DISABLED, jti="two-workers")
                started = time.monotonic()
                while http.get("/orders/1", headers=bearer(token)).status_code == 200:
                    assert time.monotonic() - started < 1.0
                    time.sleep(0.01)
    finally:
        feed.stop()


def test_duplicate_authorization_headers_are_400(http: httpx.Client, issuer: Issuer) -> None:
    """Two Authorization headers reach the sidecar joined by Envoy: a malformed request (400), not a pick."""
    headers = httpx.Headers(
        [("authorization", f"Bearer {issuer.mint()}"), ("authorization", f"Bearer {issuer.mint()}")]
    )
    r = http.get("/orders/1", headers=headers)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_a_client_cannot_choose_the_routes_requirement(http: httpx.Client, issuer: Issuer) -> None:
    """The HTTP transport's requirement header comes from Envoy's configuration only: a client's is
    never forwarded (not in allowed_headers) and would be replaced (headers_to_add) — over gRPC it means nothing."""
    loose = {"x-native-iam-requirement": '{"anonymous": true}'}
    assert http.get("/orders/1", headers=loose).status_code == 401
    assert http.post("/orders", headers={**loose, **bearer(issuer.mint(scope="orders:read"))}).status_code == 403
    assert http.get("/anything", headers=loose).status_code == 401
