"""Brute-force lockout over the wire (gRPC and HTTP): it engages exactly at the configured
threshold, and nothing in the answer — status, message, body, headers, time — tells a locked
existing identity from an unknown one or from a wrong password. Every test runs with the counters
in the database and in Redis (SYSTEM_CACHE_URL): the ``counters_in`` fixture."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import redis.asyncio as redis
from sqlalchemy import select

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.reliability._services import TokenService
from tests.token_service.api.http.conftest import OAuthService, start_oauth_service
from tests.token_service.conftest import add_identity
from token_service.cache.counters import PREFIX as COUNTERS_PREFIX
from token_service.lockout import identity_key
from token_service.store import Store
from token_service.store.tables import lockouts

THRESHOLD = 3
PASSWORD = "right-pass-for-lockout"
Create = oauth_pb2.CreateTokenWithPasswordResponse


@pytest.fixture
async def locked_service(sqlite_url: str, counters_in: dict[str, Any]) -> AsyncIterator[OAuthService]:
    service = await start_oauth_service(
        sqlite_url, lockout_free_attempts=THRESHOLD, lockout_base_s=120, lockout_max_s=120, **counters_in
    )
    for name in ("carol", "dave", "erin", "frank"):
        await add_identity(service.core, name, PASSWORD, ("orders:read",))
    yield service
    await service.app.stop(0)


async def _grpc(service: OAuthService, identity: str, password: str) -> Create:
    async with grpc.aio.insecure_channel(service.app.grpc_target) as channel:
        request = oauth_pb2.CreateTokenWithPasswordRequest(identity=identity, password=password)
        return await oauth_pb2_grpc.OAuthStub(channel).CreateTokenWithPassword(request, timeout=10)


async def _http(service: OAuthService, identity: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=service.url) as http:
        data = {"grant_type": "password", "username": identity, "password": password}
        return await http.post("/oauth2/token", data=data, headers=service.basic("web"))


def _shape(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in ("date", "content-length")}
    return response.status_code, response.json(), headers


async def test_grpc_lockout_engages_exactly_at_the_threshold(locked_service: OAuthService) -> None:
    """THRESHOLD-1 failures leave the right password working; THRESHOLD failures lock it out."""
    for _ in range(THRESHOLD - 1):
        assert (await _grpc(locked_service, "carol", "wrong")).status == Create.CREDENTIALS_INVALID
    assert (await _grpc(locked_service, "carol", PASSWORD)).status == Create.OK
    for _ in range(THRESHOLD):
        assert (await _grpc(locked_service, "dave", "wrong")).status == Create.CREDENTIALS_INVALID
    assert (await _grpc(locked_service, "dave", PASSWORD)).status == Create.CREDENTIALS_INVALID


async def test_http_lockout_engages_exactly_at_the_threshold(locked_service: OAuthService) -> None:
    """The same over the token endpoint: invalid_grant for the right password once locked."""
    for _ in range(THRESHOLD - 1):
        assert (await _http(locked_service, "carol", "wrong")).json()["error"] == "invalid_grant"
    assert (await _http(locked_service, "carol", PASSWORD)).status_code == 200
    for _ in range(THRESHOLD):
        assert (await _http(locked_service, "dave", "wrong")).json()["error"] == "invalid_grant"
    refused = await _http(locked_service, "dave", PASSWORD)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_locked_identity_answers_like_an_unknown_one(locked_service: OAuthService) -> None:
    """Locked existing identity (right or wrong password), unknown identity (fresh or hammered), and a
    plain wrong password all get byte-identical answers over gRPC and over HTTP."""
    for _ in range(THRESHOLD):
        await _grpc(locked_service, "erin", "wrong")
        await _grpc(locked_service, "nobody-hammered", "wrong")
    cases = [("erin", PASSWORD), ("erin", "wrong"), ("nobody-hammered", "x"), ("nobody-fresh", "x"), ("frank", "wrong")]
    grpc_answers = {(await _grpc(locked_service, i, p)).SerializeToString() for i, p in cases}
    http_answers = {repr(_shape(await _http(locked_service, i, p))) for i, p in cases}
    assert len(grpc_answers) == 1 and len(http_answers) == 1, (grpc_answers, http_answers)


@pytest.fixture
async def costly_service(sqlite_url: str, counters_in: dict[str, Any]) -> AsyncIterator[OAuthService]:
    """Production argon2id parameters (m=19456 KiB, t=2): a skipped hash would show in the timing."""
    service = await start_oauth_service(
        sqlite_url,
        lockout_free_attempts=THRESHOLD,
        lockout_base_s=120,
        argon2_memory_kib=19456,
        argon2_time_cost=2,
        **counters_in,
    )
    await add_identity(service.core, "erin", PASSWORD, ("orders:read",))
    await add_identity(service.core, "frank", PASSWORD, ("orders:read",))
    yield service
    await service.app.stop(0)


async def test_locked_unknown_and_wrong_password_take_the_same_time(costly_service: OAuthService) -> None:
    """Each refusal costs one argon2id verification. Measured interleaved, by the fastest of 9 (the
    machine is shared: the minimum is the cost, the rest is load); a skipped hash would be ~10× faster."""
    for _ in range(THRESHOLD):
        await _grpc(costly_service, "erin", "wrong")
    kinds = {"locked": ("erin", PASSWORD), "unknown": ("nobody", "x"), "wrong": ("frank", "wrong")}
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(9):
        for kind, (identity, password) in kinds.items():
            started = time.perf_counter()
            assert (await _grpc(costly_service, identity, password)).status == Create.CREDENTIALS_INVALID
            times[kind].append(time.perf_counter() - started)
    fastest = {kind: min(values) for kind, values in times.items()}
    print("\nlockout timing, fastest of 9: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in fastest.items()))
    assert min(fastest.values()) > 0.005, fastest  # an argon2id verify, not a shortcut
    assert max(fastest.values()) / min(fastest.values()) < 2.0, fastest


# --- F6: the decision is atomic per identity (concurrent guesses, every store, several processes)

GUESSES = 40


@pytest.fixture
async def racing_service(db_url: str, counters_in: dict[str, Any]) -> AsyncIterator[OAuthService]:
    """THRESHOLD attempts, then a long lock; every wrong password verified for real (not the dummy)
    is counted. Production
    argon2id parameters: verifications overlap as they do in production, so a race has room to show."""
    service = await start_oauth_service(
        db_url,
        lockout_free_attempts=THRESHOLD,
        lockout_base_s=120,
        lockout_max_s=120,
        argon2_memory_kib=19456,
        argon2_time_cost=2,
        **counters_in,
    )
    await add_identity(service.core, "carol", PASSWORD, ("orders:read",))
    passwords = service.core.passwords
    verify = passwords.verify
    service.guesses_verified = 0  # type: ignore[attr-defined]

    async def counting(stored_hash: str | None, password: str) -> bool:
        if stored_hash is not None and password != PASSWORD:
            service.guesses_verified += 1  # type: ignore[attr-defined]
        return await verify(stored_hash, password)

    passwords.verify = counting  # type: ignore[method-assign]
    yield service
    await service.app.stop(0)


async def _attempt(service: OAuthService, transport: str, password: str) -> bool:
    """One password grant for carol; True when it issued a token. Anything but OK or the
    credentials-invalid refusal (a 500, an UNKNOWN) fails the test."""
    if transport == "grpc":
        status = (await _grpc(service, "carol", password)).status
        assert status in (Create.OK, Create.CREDENTIALS_INVALID), status
        return status == Create.OK
    response = await _http(service, "carol", password)
    assert response.status_code in (200, 400), (response.status_code, response.text)
    assert response.status_code == 200 or response.json()["error"] == "invalid_grant", response.text
    return response.status_code == 200


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_concurrent_guesses_never_verify_past_the_threshold(racing_service: OAuthService, transport: str) -> None:
    """GUESSES wrong passwords and the right one at once: at most THRESHOLD guesses reach a real
    verification (the rest verify the dummy) — twice that if the right password came early and
    cleared the counter, as a success does —, nothing fails with a 500, and carol is locked after."""
    wrong = [_attempt(racing_service, transport, f"wrong-{i}") for i in range(GUESSES)]
    outcomes = await asyncio.gather(*wrong, _attempt(racing_service, transport, PASSWORD))
    assert not any(outcomes[:-1])
    limit = 2 * THRESHOLD - 1 if outcomes[-1] else THRESHOLD
    assert racing_service.guesses_verified <= limit, (outcomes[-1], racing_service.guesses_verified)  # type: ignore[attr-defined]
    assert not await _attempt(racing_service, transport, PASSWORD)  # locked afterwards


async def test_concurrent_right_passwords_are_all_served(racing_service: OAuthService) -> None:
    """Three times THRESHOLD logins with the right password at once, over both transports: every
    one gets a token (in-flight attempts wait for a free slot rather than look like guesses)."""
    logins = [_attempt(racing_service, ("grpc", "http")[i % 2], PASSWORD) for i in range(3 * THRESHOLD)]
    assert all(await asyncio.gather(*logins))


async def test_right_password_refused_once_concurrent_guesses_reached_the_threshold(
    racing_service: OAuthService,
) -> None:
    """THRESHOLD wrong guesses in flight together, then the right password: refused on both transports."""
    await asyncio.gather(*(_attempt(racing_service, "grpc", f"wrong-{i}") for i in range(THRESHOLD)))
    assert not await _attempt(racing_service, "grpc", PASSWORD)
    assert not await _attempt(racing_service, "http", PASSWORD)


async def _failures(db_url: str, key: str, cache_url: str | None = None) -> int:
    """The failure counter stored for ``key`` (0 without one), read straight from the database or
    from Redis."""
    if cache_url is not None:
        async with redis.Redis.from_url(cache_url) as client:
            return int(await client.hget(f"{COUNTERS_PREFIX}{key}", "failures") or 0)
    store = Store(db_url)
    try:
        async with store.read() as conn:
            return int((await conn.execute(select(lockouts.c.failures).where(lockouts.c.key == key))).scalar() or 0)
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database for two processes: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _guess(replica: TokenService, i: int, password: str) -> int:
    """One password attempt for carol, as an HTTP status (gRPC mapped onto it; an RPC error is 500)."""
    if i % 4 < 2:
        try:
            status = replica.password_grant("carol", password).status
        except grpc.RpcError:
            return 500
        return {Create.CREDENTIALS_INVALID: 400, Create.OK: 200}.get(status, 500)
    data = {"grant_type": "password", "username": "carol", "password": password, "client_id": "spa"}
    return httpx.post(f"{replica.http_url}/oauth2/token", data=data, timeout=30).status_code


async def test_two_processes_lock_out_concurrent_guesses(
    tmp_path: Path, shared_db_url: str, counters_in: dict[str, Any]
) -> None:
    """50 wrong guesses and the right password at once, split over two token-service processes on
    one database (and, counters in Redis, one Redis), over gRPC and HTTP: no 500, every refused
    attempt counted exactly once (no lost update), carol locked afterwards on both processes."""
    cache_url = counters_in.get("cache_url")
    if cache_url is not None and shared_db_url.startswith("sqlite"):
        pytest.skip("Redis counters: run once, with PostgreSQL (the production pair)")
    env = {
        **({"SYSTEM_CACHE_URL": cache_url} if cache_url else {}),
        "NATIVE_IAM_LOCKOUT_FREE_ATTEMPTS": str(THRESHOLD),
        "NATIVE_IAM_LOCKOUT_BASE_S": "120",
        "NATIVE_IAM_LOCKOUT_MAX_S": "120",
        "NATIVE_IAM_LOCKOUT_ADDRESS_FREE_ATTEMPTS": "1000",  # this test is about the identity
        "NATIVE_IAM_ARGON2_MEMORY_KIB": "19456",  # production cost: verifications overlap
        "NATIVE_IAM_ARGON2_TIME_COST": "2",
    }
    replicas = [TokenService(tmp_path, shared_db_url, name=f"replica-{i}", env=env) for i in (1, 2)]
    try:
        await asyncio.to_thread(replicas[0].start)
        token = await asyncio.to_thread(replicas[0].admin_token)
        await asyncio.to_thread(replicas[0].create_identity, token, "", "carol", PASSWORD, ("orders:read",))
        await asyncio.to_thread(
            replicas[0].create_client, token, "spa", token_endpoint_auth_method="none", grant_types=["password"]
        )
        await asyncio.to_thread(replicas[1].start)
        passwords = [f"wrong-{i}" for i in range(50)] + [PASSWORD]
        with ThreadPoolExecutor(max_workers=len(passwords)) as pool:
            statuses = await asyncio.to_thread(
                lambda: list(pool.map(lambda i: _guess(replicas[i % 2], i, passwords[i]), range(len(passwords))))
            )
        assert statuses[:50] == [400] * 50 and statuses[50] in (200, 400), statuses
        failures = await _failures(shared_db_url, identity_key("", "carol"), cache_url)
        if statuses[50] == 400:
            assert failures == 51
        else:  # the right password got a slot before the lock and cleared the failures before it
            assert THRESHOLD <= failures < 51
        for i, replica in enumerate(replicas):
            assert await asyncio.to_thread(_guess, replica, i * 2, PASSWORD) == 400
            assert await asyncio.to_thread(_guess, replica, i * 2 + 3, PASSWORD) == 400
    finally:
        for replica in replicas:
            await asyncio.to_thread(replica.stop)
