"""SYSTEM_CACHE_URL: the setting (validated, never echoed with its password), the client's bounds,
and what each use does when Redis is down or slow — never a brute-force bypass, never a 500, a
clear UNAVAILABLE / 503 temporarily_unavailable, recovery without a restart (docs/token-service.md, Redis)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.api.http.conftest import PASSWORD, OAuthService, start_oauth_service
from token_service.settings import Settings, SettingsError


def test_the_cache_url_is_validated_without_echoing_it() -> None:
    Settings.from_env({"SYSTEM_CACHE_URL": "rediss://:pw@redis.example:6380/2"})
    for bad in ("http://:hunter2@redis:6379", "redis://:hunter2@", "redis://:hunter2@h:port"):
        with pytest.raises(SettingsError) as refused:
            Settings.from_env({"SYSTEM_CACHE_URL": bad})
        assert str(refused.value).startswith("SYSTEM_CACHE_URL") and "hunter2" not in str(refused.value)


def test_the_cache_password_never_shows_in_the_settings_repr() -> None:
    settings = Settings.from_env({"SYSTEM_CACHE_URL": "redis://app:hunter2@redis:6379/1"})
    assert "hunter2" not in repr(settings) and "redis://app:***@redis:6379/1" in repr(settings)
    assert "hunter2" not in repr(Settings.from_env({"SYSTEM_CACHE_URL": "redis://:hunter2@redis:6379"}))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NATIVE_IAM_CACHE_POOL_SIZE", "0"),
        ("NATIVE_IAM_CACHE_COMMAND_TIMEOUT_S", "0"),
        ("NATIVE_IAM_CACHE_RETRIES", "-1"),
    ],
)
def test_cache_bounds_are_checked(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


@pytest.fixture
async def cached_service(sqlite_url: str, redis_server: Any, redis_url: str) -> AsyncIterator[OAuthService]:
    """An in-process token service whose counters and short-lived state are in Redis, with short
    bounds (a dead Redis answers within about a second)."""
    service = await start_oauth_service(
        sqlite_url, cache_url=redis_url, cache_command_timeout_s=0.3, cache_connect_timeout_s=0.3, cache_retries=1
    )
    yield service
    if redis_server.process is None:
        redis_server.start()
    await service.app.stop(0)


async def _grpc_grant(service: OAuthService, password: str) -> Any:
    async with grpc.aio.insecure_channel(service.app.grpc_target) as channel:
        request = oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password=password)
        return await oauth_pb2_grpc.OAuthStub(channel).CreateTokenWithPassword(request, timeout=20)


async def _http_grant(service: OAuthService, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=service.url, timeout=20) as http:
        data = {"grant_type": "password", "username": "alice", "password": password}
        return await http.post("/oauth2/token", data=data, headers=service.basic("web"))


def _metric(service: OAuthService, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("password", [PASSWORD, "wrong"])
async def test_redis_down_refuses_password_grants_with_unavailable_then_recovers(
    cached_service: OAuthService, redis_server: Any, password: str
) -> None:
    """Redis killed: the lockout cannot be checked, so the grant is refused — the right password
    too (fail closed) — with gRPC UNAVAILABLE 'brute-force protection unavailable' and HTTP 503
    temporarily_unavailable, fast, counted in native_iam_cache_errors_total (not as a database
    error). Redis back: the next grant works, with no restart."""
    assert (await _grpc_grant(cached_service, PASSWORD)).status == oauth_pb2.CreateTokenWithPasswordResponse.OK
    redis_server.kill()
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _grpc_grant(cached_service, password)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert refused.value.details() == "brute-force protection unavailable; retry later"
    answer = await _http_grant(cached_service, password)
    assert answer.status_code == 503 and answer.json()["error"] == "temporarily_unavailable", answer.text
    assert "brute-force protection unavailable" in answer.json()["error_description"]
    async with httpx.AsyncClient(base_url=cached_service.url, timeout=20) as http:
        wrong_client = await http.post(
            "/oauth2/token",
            data={"grant_type": "password", "username": "alice", "password": password},
            auth=("web", "not-the-secret"),
        )
    assert wrong_client.status_code == 503, wrong_client.text  # the failed client auth cannot be counted
    assert time.monotonic() - started < 10
    assert _metric(cached_service, "native_iam_cache_errors_total", operation="lockout", kind="unavailable") >= 2
    assert _metric(cached_service, "native_iam_db_errors_total", kind="unavailable") == 0
    redis_server.start()
    assert (await _grpc_grant(cached_service, PASSWORD)).status == oauth_pb2.CreateTokenWithPasswordResponse.OK
    assert (await _http_grant(cached_service, PASSWORD)).status_code == 200
    assert _metric(cached_service, "native_iam_cache_seconds_count", operation="lockout") > 0


async def test_a_hung_redis_cannot_hang_grants(cached_service: OAuthService, redis_server: Any) -> None:
    """Redis stopped (SIGSTOP: connections open, nothing answers): the grant is refused
    UNAVAILABLE within the configured bounds (0.3 s × 2 tries here, asserted < 10 s), not hung."""
    redis_server.process.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _grpc_grant(cached_service, PASSWORD)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 10
    finally:
        redis_server.process.signal(signal.SIGCONT)
    assert (await _grpc_grant(cached_service, PASSWORD)).status == oauth_pb2.CreateTokenWithPasswordResponse.OK


async def test_a_failure_redis_could_not_record_is_recorded_once_it_answers(
    sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis fails just after a wrong password's slot was reserved: the caller still gets
    CREDENTIALS_INVALID (its answer does not depend on Redis), and the failure is counted by a
    background retry as soon as Redis answers — a guess is never lost that way."""
    from tests.token_service.conftest import add_identity
    from token_service import lockout as lockout_module
    from token_service.core import Core
    from token_service.errors import CredentialsInvalid, Unavailable
    from token_service.grants import create_token_with_password
    from token_service.lockout import identity_key
    from token_service.testing import settings_for_tests

    monkeypatch.setattr(lockout_module, "RETRY_S", 0.05)
    core = Core.build(settings_for_tests(sqlite_url, cache_url=redis_url))
    await core.start()
    try:
        await add_identity(core, "alice", "right-pass", ("a:b",))
        step = core.lockout._step
        refusals = 3

        async def flaky(op: str, *args: Any) -> str:
            nonlocal refusals
            if op == "failed" and refusals:
                refusals -= 1
                raise Unavailable("down", dependency="cache")
            return await step(op, *args)

        monkeypatch.setattr(core.lockout, "_step", flaky)
        with pytest.raises(CredentialsInvalid):
            await create_token_with_password(core, namespace="", identity="alice", password="wrong")
        key = identity_key("", "alice")
        held = await core.lockout.peek(key)
        assert held is not None and held.pending == 1 and held.failures == 0  # slot still held
        for _ in range(100):
            counter = await core.lockout.peek(key)
            if counter is not None and counter.failures == 1:
                break
            await asyncio.sleep(0.02)
        assert counter is not None and counter.failures == 1 and counter.pending == 0
    finally:
        await core.close()
