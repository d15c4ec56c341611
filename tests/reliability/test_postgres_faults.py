"""PostgreSQL stopped and restarted under issuance load (gRPC and HTTP password grants).

The token service runs in-process on its own pgserver instance (so stopping it disturbs no other
test). While the database is down every grant is answered UNAVAILABLE (gRPC) or 503
``temporarily_unavailable`` (HTTP) with a message naming the database — never INTERNAL or 500;
after the restart grants succeed again without any intervention, and every token the service
reported as issued is in the database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import jwt
import pytest
from sqlalchemy import select

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.api.http.conftest import PASSWORD, OAuthService, start_oauth_service
from token_service.store.tables import tokens

pytestmark = pytest.mark.postgres

DOWN_S = 2.5


@pytest.fixture
def own_postgres() -> Iterator[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        # A test dependency (./dev test installs it): missing is an error, never a silent skip.
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(prefix="native-iam-pgfault-"), cleanup_mode="delete")
    yield server
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server.cleanup()


def _stop_postgres(server: Any, timeout: float = 20.0) -> None:
    """Fast shutdown (SIGINT to the postmaster: clients are disconnected), waiting until it is gone."""
    pid = server.get_pid()
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError("PostgreSQL did not stop")


async def _start_postgres(server: Any) -> None:
    """Start the stopped server again. From a fresh interpreter: pgserver forks pg_ctl, and forking
    this process while gRPC threads are busy crashes the child (gRPC's fork handlers)."""
    code = "import sys, pgserver; pgserver.get_server(sys.argv[1], cleanup_mode=None)"
    process = await asyncio.create_subprocess_exec(sys.executable, "-W", "ignore", "-c", code, str(server.pgdata))
    assert await asyncio.wait_for(process.wait(), 30) == 0


@pytest.fixture
async def service(own_postgres: Any) -> AsyncIterator[OAuthService]:
    service = await start_oauth_service(own_postgres.get_uri())
    yield service
    await service.app.stop(0)


@dataclass
class Load:
    """Outcomes by transport: (monotonic time, outcome, detail)."""

    grpc: list[tuple[float, str, str]] = field(default_factory=list)
    # (monotonic time, status, error, error_description)
    http: list[tuple[float, int, str, str]] = field(default_factory=list)
    issued: set[str] = field(default_factory=set)


async def _grpc_worker(stub: oauth_pb2_grpc.OAuthStub, load: Load, stop: asyncio.Event) -> None:
    request = oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password=PASSWORD, scopes=["orders:read"])
    while not stop.is_set():
        try:
            response = await stub.CreateTokenWithPassword(request, timeout=10)
        except grpc.aio.AioRpcError as exc:
            load.grpc.append((time.monotonic(), exc.code().name, exc.details() or ""))
        else:
            status = oauth_pb2.CreateTokenWithPasswordResponse.Status.Name(response.status)
            load.grpc.append((time.monotonic(), status, ""))
            if response.status == oauth_pb2.CreateTokenWithPasswordResponse.OK:
                load.issued.add(str(jwt.decode(response.access_token, options={"verify_signature": False})["jti"]))
        await asyncio.sleep(0.01)


async def _http_worker(http: httpx.AsyncClient, service: OAuthService, load: Load, stop: asyncio.Event) -> None:
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD, "scope": "orders:read"}
    while not stop.is_set():
        response = await http.post("/oauth2/token", data=data, headers=service.basic("web"))
        is_json = response.headers.get("content-type", "").startswith("application/json")
        body = response.json() if is_json else {"error": f"not JSON: {response.text[:60]}"}
        load.http.append(
            (time.monotonic(), response.status_code, body.get("error", ""), body.get("error_description", ""))
        )
        if response.status_code == 200:
            load.issued.add(str(jwt.decode(body["access_token"], options={"verify_signature": False})["jti"]))
        await asyncio.sleep(0.01)


async def test_database_restart_under_issuance(service: OAuthService, own_postgres: Any) -> None:
    """Stop PostgreSQL for 2.5 s under load: UNAVAILABLE/503 with a clear message while down,
    recovery without intervention, and every reported token stored."""
    load = Load()
    stop = asyncio.Event()
    async with (
        grpc.aio.insecure_channel(service.app.grpc_target) as channel,
        httpx.AsyncClient(base_url=service.url, timeout=15) as http,
    ):
        stub = oauth_pb2_grpc.OAuthStub(channel)
        workers = [asyncio.create_task(_grpc_worker(stub, load, stop)) for _ in range(3)]
        workers.append(asyncio.create_task(_http_worker(http, service, load, stop)))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(_stop_postgres, own_postgres)
        stopped_at = time.monotonic()
        await asyncio.sleep(DOWN_S)
        restarting_at = time.monotonic()
        await _start_postgres(own_postgres)
        restarted_at = time.monotonic()

        def recovered() -> bool:
            grpc_ok = [t for t, outcome, _ in load.grpc if t > restarted_at and outcome == "OK"]
            http_ok = [t for t, status, _, _ in load.http if t > restarted_at and status == 200]
            return len(grpc_ok) >= 3 and len(http_ok) >= 3

        deadline = time.monotonic() + 20
        while not recovered() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the recorded outcomes
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*workers)

    down_grpc = [(o, d) for t, o, d in load.grpc if stopped_at + 0.5 < t < restarting_at]
    down_http = [(s, e, d) for t, s, e, d in load.http if stopped_at + 0.5 < t < restarting_at]
    assert {o for _, o, _ in load.grpc} <= {"OK", "UNAVAILABLE"}, {(o, d) for _, o, d in load.grpc}
    assert {s for _, s, _, _ in load.http} <= {200, 503}
    assert down_grpc and {o for o, _ in down_grpc} == {"UNAVAILABLE"}, down_grpc[:3]
    assert all("database" in d for _, d in down_grpc)
    assert down_http and {(s, e) for s, e, _ in down_http} == {(503, "temporarily_unavailable")}
    # The description is for a human reading the 503: it names the database and says to retry.
    descriptions = {d for _, _, d in down_http}
    assert all("database" in d and "retry" in d for d in descriptions), descriptions
    assert recovered(), "grants did not succeed again within 20 s of the restart"
    async with service.core.store.read() as conn:
        stored = set((await conn.execute(select(tokens.c.jti).where(tokens.c.jti.in_(load.issued)))).scalars())
    assert load.issued and stored == load.issued, f"{len(load.issued - stored)} reported tokens are not stored"
    first_ok = min(t for t, o, _ in load.grpc if t > restarted_at and o == "OK")
    print(
        f"\nPostgreSQL down {restarting_at - stopped_at:.2f} s: {len(down_grpc)} gRPC UNAVAILABLE, "
        f"{len(down_http)} HTTP 503 {sorted(descriptions)}; "
        f"first gRPC OK {first_ok - restarted_at:.2f} s after restart; "
        f"{len(load.issued)} tokens reported, all stored"
    )
