"""The example workload (deploy/k8s/components/example-workload) run for real, outside
Kubernetes: the Envoy config and the token-service/sidecar settings exactly as the dev overlay
renders them, with only the listen ports moved to free loopback ports. A real token service
(SQLite, --demo as in the dev overlay), the real sidecar, a real Envoy and an echo app.

This is the dev walkthrough of docs/kubernetes.md as a test: public route, 401, 200 with identity headers,
403 insufficient_scope, readiness through Envoy's /ready, and metrics that pass promtool."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from native_iam._procs import Process, ProcessFailed, Supervisor, free_port, native_iam_command, port_open
from native_iam._upstream import serve_in_thread
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.conftest import require_tool
from tests.sidecar._stack import local_envoy_config

from .conftest import ROOT, Rendering

pytestmark = pytest.mark.envoy

STARTUP_TIMEOUT_S = 60.0


@dataclass
class Stack:
    ingress: str  # http://127.0.0.1:PORT of Envoy's ingress listener
    ops: str  # http://127.0.0.1:PORT of Envoy's ops listener
    token_grpc: str
    token_http: str
    token_metrics: str
    sidecar_metrics: str
    demo_password: str
    sidecar: Process

    def token(self, scopes: list[str]) -> str:
        with grpc.insecure_channel(self.token_grpc) as channel:
            reply = oauth_pb2_grpc.OAuthStub(channel).CreateTokenWithPassword(
                oauth_pb2.CreateTokenWithPasswordRequest(identity="demo", password=self.demo_password, scopes=scopes),
                timeout=10,
            )
        assert reply.access_token, reply
        return reply.access_token


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Reply:
    req = urllib.request.Request(url, method=method, headers=headers or {})  # noqa: S310 - loopback test URL
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def _demo_password(process: Process) -> str:
    found: list[str] = []

    def banner_printed() -> bool:
        match = re.search(r"demo identity : demo / (\S+)", process.log_tail(200))
        if match:
            found.append(match.group(1))
        return bool(match)

    process.wait_until(banner_printed, timeout=STARTUP_TIMEOUT_S, what="printing the demo identity")
    return found[0]


@pytest.fixture(scope="module")
def stack(renderings: dict[str, Rendering], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    envoy = require_tool("envoy")
    work = tmp_path_factory.mktemp("example-workload")
    dev = renderings["overlays/dev"]
    token_env = dict(dev.one("ConfigMap", "native-iam-token-config")["data"])
    sidecar_env = dict(dev.one("ConfigMap", "orders-native-iam-sidecar")["data"])
    envoy_config = yaml.safe_load(dev.one("ConfigMap", "orders-envoy")["data"]["envoy.yaml"])
    ports = {name: free_port() for name in ("token_grpc", "token_http", "token_metrics", "authz", "sidecar_metrics")}
    envoy_ports = {name: free_port() for name in ("ingress", "ops", "admin")}

    # The revocation feed's credential, as the dev overlay's Secret holds it, read from a file by both:
    # in the cluster the sidecar uses its projected service-account token instead, which needs a
    # cluster issuer (tests/security/test_feed_auth.py runs that path with a stand-in endpoint).
    feed_token = work / "feed-token"
    feed_token.write_bytes(base64.b64decode(dev.one("Secret", "native-iam-feed")["data"]["token"]))
    token_env.update(
        NATIVE_IAM_FEED_TOKEN_FILE=str(feed_token),
        SYSTEM_DB_URL=f"sqlite:///{work / 'native-iam.db'}",
        NATIVE_IAM_GRPC_LISTEN=f"127.0.0.1:{ports['token_grpc']}",
        NATIVE_IAM_HTTP_LISTEN=f"127.0.0.1:{ports['token_http']}",
        NATIVE_IAM_METRICS_LISTEN=f"127.0.0.1:{ports['token_metrics']}",
    )
    sidecar_env.update(
        NATIVE_IAM_FEED_TOKEN_FILE=str(feed_token),
        NATIVE_IAM_TOKEN_URL=f"127.0.0.1:{ports['token_grpc']}",
        NATIVE_IAM_AUTHZ_LISTEN=f"127.0.0.1:{ports['authz']}",
        NATIVE_IAM_OAUTH_LISTEN="",
        NATIVE_IAM_METRICS_LISTEN=f"127.0.0.1:{ports['sidecar_metrics']}",
        NATIVE_IAM_WORKERS="1",  # the machine's cores are shared with the rest of the suite
    )
    app = serve_in_thread()
    upstreams = {"native_iam_authz": ports["authz"], "app": app.server_address[1]}
    config_path = work / "envoy.yaml"
    config_path.write_text(yaml.safe_dump(local_envoy_config(envoy_config, envoy_ports, upstreams)))

    with Supervisor() as supervisor, _shutting_down(app):
        token = supervisor.start(
            Process(
                "token-service",
                native_iam_command("token-service", "--demo"),
                log_path=work / "token-service.log",
                env=token_env,
                cwd=work,
            )
        )
        password = _demo_password(token)
        sidecar = supervisor.start(
            Process("sidecar", native_iam_command("sidecar"), log_path=work / "sidecar.log", env=sidecar_env, cwd=ROOT)
        )
        proxy = supervisor.start(
            Process(
                "envoy",
                [envoy, "-c", str(config_path), "--disable-hot-restart", "--concurrency", "1", "--log-level", "warn"],
                log_path=work / "envoy.log",
            )
        )
        ops = f"http://127.0.0.1:{envoy_ports['ops']}"
        try:
            proxy.wait_until(
                lambda: port_open("127.0.0.1", envoy_ports["ops"]) and request(f"{ops}/ready").status == 200,
                timeout=STARTUP_TIMEOUT_S,
                what="ready (sidecar and app healthy)",
            )
        except ProcessFailed as exc:
            # Envoy's own view of the two health-checked clusters says which one is not healthy.
            clusters = request(f"http://127.0.0.1:{envoy_ports['admin']}/clusters").body.decode(errors="replace")
            stats = request(f"http://127.0.0.1:{envoy_ports['admin']}/stats?filter=health_check").body.decode()
            health = "\n".join(line for line in clusters.splitlines() if "health_flags" in line) + "\n" + stats
            raise ProcessFailed(f"{exc}\nEnvoy cluster health:\n{health}") from None
        yield Stack(
            ingress=f"http://127.0.0.1:{envoy_ports['ingress']}",
            ops=ops,
            token_grpc=f"127.0.0.1:{ports['token_grpc']}",
            token_http=f"http://127.0.0.1:{ports['token_http']}",
            token_metrics=f"http://127.0.0.1:{ports['token_metrics']}/metrics",
            sidecar_metrics=f"http://127.0.0.1:{ports['sidecar_metrics']}/metrics",
            demo_password=password,
            sidecar=sidecar,
        )


@contextlib.contextmanager
def _shutting_down(server: ThreadingHTTPServer) -> Iterator[None]:
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_public_route_needs_no_token(stack: Stack) -> None:
    """GET /public without a token reaches the app (ext_authz disabled on that route)."""
    reply = request(f"{stack.ingress}/public/status")
    assert reply.status == 200
    assert reply.json()["path"] == "/public/status"


def test_protected_route_without_token_is_401_with_the_realm(stack: Stack) -> None:
    """GET /orders without a token: 401 and WWW-Authenticate: Bearer realm="orders" (the sidecar's NATIVE_IAM_REALM)."""
    reply = request(f"{stack.ingress}/orders")
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith('Bearer realm="orders"')


def test_route_metadata_scope_allows_and_sets_identity_headers(stack: Stack) -> None:
    """GET /orders with an orders:read token reaches the app with the sidecar's identity headers.

    A forged identity header from the client is replaced by the sidecar's."""
    token = stack.token(["orders:read"])
    reply = request(
        f"{stack.ingress}/orders",
        headers={"Authorization": f"Bearer {token}", "x-native-iam-identity": "mallory"},
    )
    assert reply.status == 200, reply.body
    seen = reply.json()["identity_headers"]
    assert seen["x-native-iam-identity"] == "demo"
    assert "orders:read" in seen["x-native-iam-scopes"].split()


def test_context_extensions_scope_denies_with_insufficient_scope(stack: Stack) -> None:
    """POST /orders (context_extensions scopes "orders:write") with an orders:read token.

    403 insufficient_scope, naming orders:write in the challenge."""
    token = stack.token(["orders:read"])
    reply = request(f"{stack.ingress}/orders", method="POST", headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 403
    challenge = reply.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="orders:write"' in challenge


def test_context_extensions_scope_allows_the_right_token(stack: Stack) -> None:
    """POST /orders with an orders:write token reaches the app."""
    token = stack.token(["orders:write"])
    reply = request(f"{stack.ingress}/orders", method="POST", headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 200, reply.body
    assert reply.json()["method"] == "POST"


def test_forged_identity_headers_never_reach_the_app_on_a_public_route(stack: Stack) -> None:
    """On /public (no ext_authz) client-sent x-native-iam-* headers are removed before the app sees them."""
    reply = request(
        f"{stack.ingress}/public",
        headers={"x-native-iam-identity": "admin", "x-native-iam-scopes": "iam:admin", "x-native-iam-jti": "x"},
    )
    assert reply.status == 200
    assert reply.json()["identity_headers"] == {}


def test_bad_token_is_401_invalid_token(stack: Stack) -> None:
    """A malformed bearer token on the default route: 401 invalid_token."""
    reply = request(f"{stack.ingress}/anything", headers={"Authorization": "Bearer not.a.jwt"})
    assert reply.status == 401
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]


def test_token_service_http_port_publishes_the_signing_key(stack: Stack) -> None:
    """The token service's HTTP listener (the Service's port 8080) serves a JWKS holding the key that signs tokens."""
    header_b64 = stack.token(["orders:read"]).split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    reply = request(f"{stack.token_http}/.well-known/jwks.json")
    assert reply.status == 200
    assert header["kid"] in {key["kid"] for key in reply.json()["keys"]}


def test_envoy_metrics_are_served_on_the_ops_listener(stack: Stack) -> None:
    """/stats/prometheus on the ops listener (what the PodMonitor scrapes) serves Envoy's metrics, incl. ext_authz's."""
    reply = request(f"{stack.ops}/stats/prometheus")
    assert reply.status == 200
    assert b"envoy_cluster_ext_authz" in reply.body or b"ext_authz" in reply.body


@pytest.mark.parametrize("component", ["token_metrics", "sidecar_metrics"])
def test_component_metrics_pass_promtool(stack: Stack, component: str, tmp_path: Path) -> None:
    """The running token service's and sidecar's /metrics pass `promtool check metrics`."""
    promtool = require_tool("promtool")
    body = request(getattr(stack, component)).body
    assert b"native_iam_" in body
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_without_the_sidecar_requests_fail_closed_and_the_pod_turns_unready(stack: Stack) -> None:
    """Sidecar down: protected routes answer 503 at once (status_on_error), /ready turns 503; back once it restarts.

    Restarts the sidecar before returning, so the tests around it are unaffected."""
    token = stack.token(["orders:read"])
    auth = {"Authorization": f"Bearer {token}"}
    stack.sidecar.stop()
    try:
        assert request(f"{stack.ingress}/orders", headers=auth).status == 503
        assert request(f"{stack.ingress}/public").status == 200  # no ext_authz on the public route
        # Two failed checks 2 s apart (unhealthy_threshold: 2, unhealthy_interval: 2s) after the next interval.
        assert _wait_for(lambda: request(f"{stack.ops}/ready").status == 503, timeout=20)
    finally:
        stack.sidecar.start()
    assert _wait_for(lambda: request(f"{stack.ops}/ready").status == 200, timeout=STARTUP_TIMEOUT_S)
    assert request(f"{stack.ingress}/orders", headers=auth).status == 200
