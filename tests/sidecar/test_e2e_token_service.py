"""End to end with the REAL token service: `native-iam token-service` → sidecar → Envoy → echo app.

Tokens are issued by the token service's OAuth API, identities created and tokens revoked through
its admin API; the sidecar gets keys and revocations from its Feed.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from native_iam.admin.v1 import admin_pb2, admin_pb2_grpc
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from token_service.testing import TEST_FEED_TOKEN

from ..conftest import require_tool
from . import _stack

pytestmark = pytest.mark.envoy
ISSUER = "http://token-service.test"
ADMIN_PASSWORD = "admin-password-for-tests"
ALICE_PASSWORD = "alice-password-for-tests"
OK = oauth_pb2.CreateTokenWithPasswordResponse.OK


@contextlib.contextmanager
def token_service(tmp: Path, **extra_env: str) -> Iterator[tuple[str, str, _stack.Proc]]:
    """`native-iam token-service` on SQLite, fast settings (plus ``extra_env``); yields its gRPC target and HTTP
    URL once SERVING."""
    port, http_port = _stack.free_port(), _stack.free_port()
    env = {
        "SYSTEM_DB_URL": f"sqlite:///{tmp}/native-iam-{port}.db",
        "NATIVE_IAM_GRPC_LISTEN": f"127.0.0.1:{port}",
        "NATIVE_IAM_HTTP_LISTEN": f"127.0.0.1:{http_port}",
        "NATIVE_IAM_METRICS_LISTEN": "off",
        "NATIVE_IAM_ISSUER": ISSUER,
        "NATIVE_IAM_BOOTSTRAP_ADMIN": "admin",
        "NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "NATIVE_IAM_FEED_HEARTBEAT_S": "0.5",
        "NATIVE_IAM_FEED_POLL_S": "0.05",
        "NATIVE_IAM_KEY_PUBLISH_DELAY_S": "0",
        "NATIVE_IAM_ARGON2_MEMORY_KIB": "256",
        "NATIVE_IAM_ARGON2_TIME_COST": "1",
        "NATIVE_IAM_LOG_FORMAT": "text",
        "NATIVE_IAM_FEED_TOKEN": TEST_FEED_TOKEN,
        **extra_env,
    }
    proc = _stack.Proc(
        [sys.executable, "-m", "native_iam.cli", "token-service"], tmp / f"token-service-{port}.log", env
    )
    try:
        proc.wait(lambda: _stack.serving(port), "serving", timeout=60)
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{http_port}", proc
    finally:
        proc.stop()


def password_token(
    target: str, identity: str, password: str, *, namespace: str = "", scopes: tuple[str, ...] = ()
) -> str:
    with grpc.insecure_channel(target) as channel:
        response = oauth_pb2_grpc.OAuthStub(channel).CreateTokenWithPassword(
            oauth_pb2.CreateTokenWithPasswordRequest(
                namespace=namespace, identity=identity, password=password, scopes=scopes
            ),
            timeout=10,
        )
    assert response.status == OK, response
    return response.access_token


def _admin_token(target: str) -> str:
    """The bootstrap admin is created just after the server starts serving: retry briefly."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return password_token(target, "admin", ADMIN_PASSWORD, scopes=("iam:admin",))
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass
class Stack:
    target: str  # token service gRPC
    url: str  # Envoy
    oauth_port: int  # the sidecar's OAuth facade
    admin_token: str
    token_service: _stack.Proc
    http_url: str  # token service OAuth HTTP

    def admin(self, service: str):  # type: ignore[no-untyped-def]
        channel = grpc.insecure_channel(self.target)
        return getattr(admin_pb2_grpc, f"{service}Stub")(channel), (("authorization", f"Bearer {self.admin_token}"),)


@contextlib.contextmanager
def stack(tmp: Path, **sidecar_env: str) -> Iterator[Stack]:
    envoy_bin = require_tool("envoy")
    with token_service(tmp) as (target, http_url, proc):
        admin_token = _admin_token(target)
        with grpc.insecure_channel(target) as channel:
            admin_pb2_grpc.IdentitiesStub(channel).CreateIdentity(
                admin_pb2.CreateIdentityRequest(
                    namespace="shop", name="alice", password=ALICE_PASSWORD, policy=["orders:read", "orders:write"]
                ),
                metadata=(("authorization", f"Bearer {admin_token}"),),
                timeout=10,
            )
        env = {"NATIVE_IAM_TOKEN_URL": target, "NATIVE_IAM_ISSUER": ISSUER, **sidecar_env}
        with _stack.echo_upstream() as upstream, _stack.sidecar(tmp, env) as ports:
            listen = _stack.free_port()
            config = _stack.envoy_config(tmp, listen=listen, authz=ports["authz"], upstream=upstream)
            with _stack.envoy(envoy_bin, config, listen) as url:
                yield Stack(target, url, ports["oauth"], admin_token, proc, http_url)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("real")) as s:
        yield s


@pytest.fixture
def http(real: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=real.url, timeout=5) as client:
        yield client


def alice(s: Stack, *scopes: str) -> str:
    return password_token(s.target, "alice", ALICE_PASSWORD, namespace="shop", scopes=scopes)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_issued_token_reaches_upstream_with_identity(real: Stack, http: httpx.Client) -> None:
    """A token issued by the token service passes Envoy; the app sees alice in namespace shop."""
    r = http.get("/orders/7", headers=bearer(alice(real, "orders:read")))
    assert r.status_code == 200, r.text
    headers = r.json()["headers"]
    assert (headers["x-native-iam-identity"], headers["x-native-iam-namespace"]) == ("alice", "shop")
    assert headers["x-native-iam-scopes"] == "orders:read"


def test_without_token_and_with_bad_token_401(http: httpx.Client) -> None:
    """No token → 401 challenge without error; a garbage token → 401 invalid_token."""
    assert http.get("/orders/7").status_code == 401
    r = http.get("/orders/7", headers=bearer("a.b.c"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"


def test_read_token_cannot_post_403(real: Stack, http: httpx.Client) -> None:
    """A token with orders:read only gets 403 insufficient_scope on POST /orders."""
    r = http.post("/orders", headers=bearer(alice(real, "orders:read")))
    assert r.status_code == 403 and 'scope="orders:write"' in r.headers["www-authenticate"]


def test_anonymous_route(http: httpx.Client) -> None:
    """/healthz needs no token."""
    assert http.get("/healthz").status_code == 200


def test_token_disabled_through_admin_api_is_denied_within_one_second(real: Stack, http: httpx.Client) -> None:
    """Tokens.SetTokenEnabled(false) through the admin API → the token is denied through Envoy within 1 s."""
    token = alice(real, "orders:read")
    assert http.get("/orders/7", headers=bearer(token)).status_code == 200
    jti = http.get("/orders/7", headers=bearer(token)).json()["headers"]["x-native-iam-jti"]
    stub, metadata = real.admin("Tokens")
    stub.SetTokenEnabled(admin_pb2.SetTokenEnabledRequest(jti=jti, enabled=False), metadata=metadata, timeout=10)
    started = time.monotonic()
    while http.get("/orders/7", headers=bearer(token)).status_code == 200:
        assert time.monotonic() - started < 1.0, "still allowed 1 s after the admin disabled the token"
        time.sleep(0.01)
    assert http.get("/orders/7", headers=bearer(token)).json()["error"] == "invalid_token"


def test_facade_check_access_and_forwarded_password_grant(real: Stack) -> None:
    """The sidecar's OAuth API: a forwarded password grant, then CheckAccess answered locally."""
    with grpc.insecure_channel(f"127.0.0.1:{real.oauth_port}") as channel:
        stub = oauth_pb2_grpc.OAuthStub(channel)
        issued = stub.CreateTokenWithPassword(
            oauth_pb2.CreateTokenWithPasswordRequest(
                namespace="shop", identity="alice", password=ALICE_PASSWORD, scopes=["orders:read"]
            ),
            timeout=10,
        )
        assert issued.status == OK
        ok = stub.CheckAccess(
            oauth_pb2.CheckAccessRequest(access_token=issued.access_token, scopes=["orders:read"]), timeout=5
        )
        no = stub.CheckAccess(
            oauth_pb2.CheckAccessRequest(access_token=issued.access_token, scopes=["orders:write"]), timeout=5
        )
    assert ok.status == oauth_pb2.CheckAccessResponse.OK and ok.identity == "alice"
    assert no.status == oauth_pb2.CheckAccessResponse.UNAUTHORIZED


def test_token_service_stopped_valid_tokens_pass_until_bound_then_503(tmp_path: Path) -> None:
    """Token service killed: valid tokens pass on cached keys until the staleness bound, then 503 (closed)."""
    bound = 2.0
    with stack(tmp_path, NATIVE_IAM_FEED_MAX_STALENESS_S=str(bound)) as s:
        token = alice(s, "orders:read")
        with httpx.Client(base_url=s.url, timeout=5) as http:
            assert http.get("/orders/1", headers=bearer(token)).status_code == 200
            s.token_service.popen.kill()
            s.token_service.popen.wait(5)
            stopped = time.monotonic()
            assert http.get("/orders/1", headers=bearer(token)).status_code == 200
            assert time.monotonic() - stopped < bound
            time.sleep(bound + 0.7)
            late = http.get("/orders/1", headers=bearer(token))
            assert late.status_code == 503 and late.json()["error"] == "temporarily_unavailable"


def test_client_credentials_token_reaches_upstream_then_denied_within_one_second_of_disable(
    real: Stack, http: httpx.Client
) -> None:
    """A client_credentials token from the token service's HTTP endpoint passes Envoy: the app sees
    the client (x-native-iam-client), no identity; Clients.SetClientEnabled(false) → denied within 1 s."""
    stub, metadata = real.admin("Clients")
    created = stub.CreateClient(
        admin_pb2.CreateClientRequest(client_id="alice", grant_types=["client_credentials"], scopes=["orders:*"]),
        metadata=metadata,
        timeout=10,
    )
    response = httpx.post(
        f"{real.http_url}/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "orders:read"},
        auth=("alice", created.client_secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    r = http.get("/orders/7", headers=bearer(token))
    assert r.status_code == 200, r.text
    headers = r.json()["headers"]
    assert headers["x-native-iam-client"] == "alice" and "x-native-iam-identity" not in headers
    stub.SetClientEnabled(admin_pb2.SetClientEnabledRequest(client_id="alice", enabled=False), metadata=metadata)
    started = time.monotonic()
    while http.get("/orders/7", headers=bearer(token)).status_code == 200:
        assert time.monotonic() - started < 1.0, "still allowed 1 s after the admin disabled the client"
        time.sleep(0.01)
    assert http.get("/orders/7", headers=bearer(token)).json()["error"] == "invalid_token"


def test_exchanged_token_passes_the_sidecar_and_dies_with_its_user_within_one_second(tmp_path: Path) -> None:
    """RFC 8693: a workload exchanges alice's token for audience "orders"; B's sidecar allows it as
    alice; disabling alice (the IDENTITY cut-off by sub + namespace + iat) denies it within 1 s."""
    exchange_grant = "urn:ietf:params:oauth:grant-type:token-exchange"
    with stack(tmp_path, NATIVE_IAM_ACCEPTED_AUDIENCES="orders") as s:
        clients, metadata = s.admin("Clients")
        created = clients.CreateClient(
            admin_pb2.CreateClientRequest(
                client_id="checkout", grant_types=[exchange_grant], exchange_audiences=["orders"]
            ),
            metadata=metadata,
            timeout=10,
        )
        response = httpx.post(
            f"{s.http_url}/oauth2/token",
            auth=("checkout", created.client_secret),
            data={
                "grant_type": exchange_grant,
                "subject_token": alice(s, "orders:read"),
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "audience": "orders",
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        exchanged = response.json()["access_token"]
        with httpx.Client(base_url=s.url, timeout=5) as http:
            allowed = http.get("/orders/7", headers=bearer(exchanged))
            assert allowed.status_code == 200, allowed.text
            assert allowed.json()["headers"]["x-native-iam-identity"] == "alice"
            identities, metadata = s.admin("Identities")
            identities.SetIdentityEnabled(
                admin_pb2.SetIdentityEnabledRequest(
                    identity=admin_pb2.IdentityRef(namespace="shop", name="alice"), enabled=False
                ),
                metadata=metadata,
                timeout=10,
            )
            started = time.monotonic()
            while http.get("/orders/7", headers=bearer(exchanged)).status_code == 200:
                assert time.monotonic() - started < 1.0, "exchanged token still allowed 1 s after alice was disabled"
                time.sleep(0.01)
            assert http.get("/orders/7", headers=bearer(exchanged)).json()["error"] == "invalid_token"
