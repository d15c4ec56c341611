"""Secrets at rest and in logs, after a full run of flows through real processes.

The token service and a sidecar run as processes at log level DEBUG (JSON logs to files). A run of
flows touches every path that handles a secret: bootstrap admin, admin calls with a bearer token,
identity creation and password change, an OAuth client with a generated secret, password and
refresh grants over gRPC, HTTP and the sidecar's facade, a refused password, CheckAccess,
ext_authz Checks (allowed and denied), revoke, introspect, token disable and delete. Then the
database (the SQLite file with its WAL, or every PostgreSQL table; with SYSTEM_CACHE_URL also every
Redis key and value) and both logs are searched for every password (Redis's too), client secret and
token — whole, and each token's payload and signature segments.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
import httpx
import jwt
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from native_iam.admin.v1 import admin_pb2
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.reliability._services import ADMIN_PASSWORD, Sidecar, TokenService
from tests.token_service.conftest import RedisServer

OK = oauth_pb2.CreateTokenWithPasswordResponse.OK
FIRST_PASSWORD = "First-Secret-Pass-6f1d"
PASSWORD = "Second-Secret-Pass-93ab"
WRONG_PASSWORD = "Wrong-Secret-Pass-0c2e"
REDIS_PASSWORD = "Redis-Secret-Pass-5e7a"
LOG_ENV = {"NATIVE_IAM_LOG_LEVEL": "DEBUG", "NATIVE_IAM_LOG_FORMAT": "json"}


@dataclass
class Run:
    """Every secret the flows handled, and where to look for them afterwards."""

    passwords: list[str] = field(default_factory=lambda: [ADMIN_PASSWORD, FIRST_PASSWORD, PASSWORD, WRONG_PASSWORD])
    client_secrets: list[str] = field(default_factory=list)
    access_tokens: list[str] = field(default_factory=list)
    refresh_tokens: list[str] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    database: bytes = b""

    def needles(self) -> dict[str, str]:
        """What must never appear: each secret, and each token's payload and signature segment."""
        found = {f"password {i}": p for i, p in enumerate(self.passwords)}
        found |= {f"client secret {i}": s for i, s in enumerate(self.client_secrets)}
        for kind, tokens in (("access", self.access_tokens), ("refresh", self.refresh_tokens)):
            for i, token in enumerate(tokens):
                _, payload, signature = token.split(".")
                found |= {f"{kind} token {i}": token, f"{kind} token {i} payload": payload}
                found[f"{kind} token {i} signature"] = signature
        return found


def _check_request(token: str) -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.path = "GET", "/orders/1"
    http.headers["authorization"] = f"Bearer {token}"
    request.attributes.context_extensions["scopes"] = "orders:read"
    return request


def _flows(service: TokenService, sidecar: Sidecar, run: Run) -> None:
    admin_token = service.admin_token()
    run.access_tokens.append(admin_token)
    service.create_identity(admin_token, "shop", "alice", FIRST_PASSWORD, ("orders:read", "openid"))
    identities, md = service.admin("Identities", admin_token)
    ref = admin_pb2.IdentityRef(namespace="shop", name="alice")
    identities.SetPassword(admin_pb2.SetPasswordRequest(identity=ref, password=PASSWORD), metadata=md, timeout=10)
    clients, _ = service.admin("Clients", admin_token)
    created = clients.CreateClient(
        admin_pb2.CreateClientRequest(
            client_id="web", grant_types=["password", "refresh_token"], rotate_refresh_tokens=True
        ),
        metadata=md,
        timeout=10,
    )
    run.client_secrets.append(created.client_secret)

    # gRPC at the token service: a refused password, a grant, a refresh, a check.
    assert service.password_grant("alice", WRONG_PASSWORD, namespace="shop").status != OK
    issued = service.password_grant("alice", PASSWORD, namespace="shop", scopes=("orders:read",))
    assert issued.status == OK
    run.access_tokens.append(issued.access_token)
    run.refresh_tokens.append(issued.refresh_token)
    with grpc.insecure_channel(service.grpc_address) as channel:
        stub = oauth_pb2_grpc.OAuthStub(channel)
        refreshed = stub.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=issued.refresh_token), timeout=10)
        run.access_tokens.append(refreshed.access_token)
        stub.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=refreshed.access_token, scopes=["orders:read"]))

    # HTTP: password and refresh grants with client auth, introspect, revoke.
    basic = {"Authorization": "Basic " + base64.b64encode(f"web:{created.client_secret}".encode()).decode()}
    with httpx.Client(base_url=service.http_url, timeout=10) as http:
        form = {
            "grant_type": "password",
            "username": "alice",
            "password": PASSWORD,
            "namespace": "shop",
            "scope": "orders:read openid",
        }
        body = http.post("/oauth2/token", data=form, headers=basic).json()
        run.access_tokens.append(body["access_token"])
        run.refresh_tokens.append(body["refresh_token"])
        assert (
            http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 200
        )
        rotated = http.post(
            "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}, headers=basic
        ).json()
        run.access_tokens.append(rotated["access_token"])
        run.refresh_tokens.append(rotated["refresh_token"])
        assert http.post("/oauth2/introspect", data={"token": rotated["access_token"]}, headers=basic).json()["active"]
        assert http.post("/oauth2/revoke", data={"token": body["access_token"]}, headers=basic).status_code == 200
        bad = http.post("/oauth2/token", data={**form, "password": WRONG_PASSWORD}, headers=basic)
        assert bad.json()["error"] == "invalid_grant"

    # The sidecar: ext_authz Checks (allow, deny of the revoked token), its facade's grants and check.
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.authz_port}") as channel:
        check = external_auth_pb2_grpc.AuthorizationStub(channel).Check
        assert check(_check_request(refreshed.access_token), timeout=5).status.code == 0
        assert check(_check_request(body["access_token"]), timeout=5).status.code != 0
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.oauth_port}") as channel:
        facade = oauth_pb2_grpc.OAuthStub(channel)
        via = facade.CreateTokenWithPassword(
            oauth_pb2.CreateTokenWithPasswordRequest(namespace="shop", identity="alice", password=PASSWORD), timeout=10
        )
        run.access_tokens.append(via.access_token)
        run.refresh_tokens.append(via.refresh_token)
        again = facade.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=via.refresh_token), timeout=10)
        run.access_tokens.append(again.access_token)
        facade.CheckAccess(
            oauth_pb2.CheckAccessRequest(access_token=again.access_token, scopes=["orders:read"]), timeout=5
        )
        facade.CreateTokenWithPassword(
            oauth_pb2.CreateTokenWithPasswordRequest(namespace="shop", identity="alice", password=WRONG_PASSWORD),
            timeout=10,
        )

    # Admin: list, disable and delete tokens.
    tokens, _ = service.admin("Tokens", admin_token)
    listed = tokens.ListTokens(admin_pb2.ListTokensRequest(namespace="shop", identity="alice"), metadata=md, timeout=10)
    assert listed.tokens
    jti = lambda t: jwt.decode(t, options={"verify_signature": False})["jti"]  # noqa: E731
    tokens.SetTokenEnabled(
        admin_pb2.SetTokenEnabledRequest(jti=jti(via.access_token), enabled=False), metadata=md, timeout=10
    )
    tokens.DeleteToken(admin_pb2.DeleteTokenRequest(jti=jti(again.access_token)), metadata=md, timeout=10)
    assert all(t.count(".") == 2 for t in run.access_tokens + run.refresh_tokens)


async def _dump_postgres(url: str) -> bytes:
    """Every row of every table in the public schema, as text."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        chunks = []
        for row in tables:
            rows = await conn.fetch(f'SELECT t::text AS line FROM "{row["tablename"]}" t')  # noqa: S608 - names from the catalog
            chunks.extend(r["line"] for r in rows)
        return "\n".join(chunks).encode()
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "sqlite+redis"], scope="module")
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp: Path = tmp_path_factory.mktemp(f"secrets-{request.param}")
    result = Run()
    env, redis = dict(LOG_ENV), None
    if request.param.endswith("+redis"):  # counters in a password-protected Redis
        redis = RedisServer(tmp, password=REDIS_PASSWORD)
        redis.start()
        env["SYSTEM_CACHE_URL"] = redis.url
        result.passwords.append(REDIS_PASSWORD)
    if request.param.startswith("sqlite"):
        db_url = f"sqlite:///{tmp}/native-iam.db"
    else:
        server = request.getfixturevalue("postgres_server")
        from tests.token_service.conftest import _fresh_postgres_database

        db_url = asyncio.run(_fresh_postgres_database(server.get_uri()))
    service = TokenService(tmp, db_url, env=env).start()
    sidecar = None
    try:
        sidecar = Sidecar(tmp, service.grpc_address, LOG_ENV).start()
        _flows(service, sidecar, result)
        if redis is not None:
            result.database = redis.contents()
            assert b"native-iam:lockout:" in result.database  # the refused password was counted there
    finally:
        if sidecar is not None:
            sidecar.stop()
        service.stop()
        if redis is not None:
            redis.kill()
    result.logs = {"token service": service.log(), "sidecar": sidecar.log() if sidecar else ""}
    if request.param.startswith("sqlite"):
        result.database += b"".join(p.read_bytes() for p in tmp.glob("native-iam.db*"))
    else:
        result.database = asyncio.run(_dump_postgres(db_url))
    yield result


def test_flows_ran_and_were_logged(run: Run) -> None:
    """The inspection below is meaningful: the flows produced tokens, rows and log lines."""
    assert len(run.access_tokens) >= 7 and len(run.refresh_tokens) >= 4
    assert len(run.database) > 1000
    assert run.logs["token service"].count("\n") > 10 and run.logs["sidecar"].count("\n") > 3


def test_database_holds_no_password_secret_or_token(run: Run) -> None:
    """No raw password, client secret, access or refresh token (nor a token's payload or signature) at rest."""
    leaked = [name for name, needle in run.needles().items() if needle.encode() in run.database]
    assert not leaked, leaked


@pytest.mark.parametrize("component", ["token service", "sidecar"])
def test_logs_hold_no_password_secret_or_token(run: Run, component: str) -> None:
    """Neither component's DEBUG log contains a password, a client secret or any part of a token that identifies it."""
    text = run.logs[component]
    leaked = [name for name, needle in run.needles().items() if needle in text]
    assert not leaked, leaked
