"""Brute-force lockout over the wire (gRPC and HTTP): it engages exactly at the configured
threshold, and nothing in the answer — status, message, body, headers, time — tells a locked
existing identity from an unknown one or from a wrong password."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.conftest import add_identity
from tests.token_service.http.conftest import OAuthService, start_oauth_service

THRESHOLD = 3
PASSWORD = "right-pass-for-lockout"
Create = oauth_pb2.CreateTokenWithPasswordResponse


@pytest.fixture
async def locked_service(sqlite_url: str) -> AsyncIterator[OAuthService]:
    service = await start_oauth_service(
        sqlite_url, lockout_free_attempts=THRESHOLD, lockout_base_s=120, lockout_max_s=120
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
async def costly_service(sqlite_url: str) -> AsyncIterator[OAuthService]:
    """Production argon2id parameters (m=19456 KiB, t=2): a skipped hash would show in the timing."""
    service = await start_oauth_service(
        sqlite_url, lockout_free_attempts=THRESHOLD, lockout_base_s=120, argon2_memory_kib=19456, argon2_time_cost=2
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
