"""sidecar/server.py: a running worker against a real Feed server: readiness, Check over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from native_iam.oauth.v1 import feed_pb2
from sidecar.metrics import Metrics
from sidecar.server import Sidecar
from sidecar.settings import Settings

from ._feed import AUDIENCE, ISSUER, FeedServer, Issuer

T, R = feed_pb2.RevocationTarget, feed_pb2.RevocationReason


def settings_for(feed: FeedServer, **kw: object) -> Settings:
    base = dict(
        token_url=feed.address,
        issuer=ISSUER,
        audiences=(AUDIENCE,),
        authz_listen="127.0.0.1:0",
        oauth_listen="127.0.0.1:0",
        metrics_listen="",
        feed_max_staleness_s=5.0,
    )
    return Settings(**{**base, **kw})  # type: ignore[arg-type]


async def until(predicate, within: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


@pytest.fixture(params=["aio", "sync"])
async def sidecar(feed: FeedServer, request: pytest.FixtureRequest) -> AsyncIterator[Sidecar]:
    """A running worker, once with each ext_authz server kind."""
    s = Sidecar(settings_for(feed, authz_server=request.param), Metrics(CollectorRegistry()))
    await s.start()
    yield s
    await s.stop(0)


def _request(token: str) -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    request.attributes.request.http.method = "GET"
    request.attributes.request.http.headers["authorization"] = f"Bearer {token}"
    return request


async def _health(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
        return response.status


async def test_becomes_ready_after_keys_and_sync(sidecar: Sidecar) -> None:
    """Health turns SERVING once keys are loaded and the feed has synced."""
    assert await until(lambda: sidecar.ready)
    assert await until(lambda: sidecar._ready)
    assert (
        await _health(sidecar.authz_port, "envoy.service.auth.v3.Authorization")
        == health_pb2.HealthCheckResponse.SERVING
    )


async def test_not_ready_while_feed_unreachable(issuer: Issuer) -> None:
    """Without a reachable feed the worker stays NOT_SERVING (no decision on an empty revocation set)."""
    feed = FeedServer(issuer).start()
    feed.stop()  # a port that was valid, now closed
    s = Sidecar(settings_for(feed), Metrics(CollectorRegistry()))
    await s.start()
    try:
        await asyncio.sleep(0.5)
        assert await _health(s.authz_port) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await s.stop(0)


async def test_check_over_grpc_allows_valid_token(sidecar: Sidecar, issuer: Issuer) -> None:
    """The Authorization/Check RPC allows a valid token with gRPC OK."""
    assert await until(lambda: sidecar.ready)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.authz_port}") as channel:
        response = await external_auth_pb2_grpc.AuthorizationStub(channel).Check(_request(issuer.mint()))
    assert response.status.code == code_pb2.OK


async def test_revocation_pushed_by_feed_denies_within_a_second(
    sidecar: Sidecar, issuer: Issuer, feed: FeedServer
) -> None:
    """A revocation published on the feed denies the (cached) token within 1 s."""
    assert await until(lambda: sidecar.ready)
    token = issuer.mint(jti="to-revoke")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.authz_port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        assert (await stub.Check(_request(token))).status.code == code_pb2.OK
        feed.publish(T.TOKEN, R.TOKEN_DISABLED, jti="to-revoke")
        loop = asyncio.get_running_loop()
        started = loop.time()
        while (await stub.Check(_request(token))).status.code == code_pb2.OK:
            assert loop.time() - started < 1.0, "revocation not applied within 1 s"
            await asyncio.sleep(0.01)


async def test_stop_reports_not_serving_first(sidecar: Sidecar) -> None:
    """On shutdown, health goes NOT_SERVING before the servers stop."""
    result = sidecar.health.enter_graceful_shutdown()
    if asyncio.iscoroutine(result):
        await result
    assert await _health(sidecar.authz_port) == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_oauth_facade_is_served_beside_ext_authz(sidecar: Sidecar, issuer: Issuer) -> None:
    """The worker also serves the OAuth API on NATIVE_IAM_OAUTH_LISTEN (CheckAccess answered locally)."""
    from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc

    assert await until(lambda: sidecar.ready)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.oauth_port}") as channel:
        response = await oauth_pb2_grpc.OAuthStub(channel).CheckAccess(
            oauth_pb2.CheckAccessRequest(access_token=issuer.mint(scope="a"), scopes=["a"])
        )
    assert response.status == oauth_pb2.CheckAccessResponse.OK


async def test_housekeeping_survives_a_failing_step(feed: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that raises once (here: the gauges) does not stop readiness from being reported."""
    s = Sidecar(settings_for(feed), Metrics(CollectorRegistry()))
    calls = {"n": 0}
    original = s._gauges

    def flaky() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        original()

    monkeypatch.setattr(s, "_gauges", flaky)
    await s.start()
    try:
        assert await until(lambda: s._ready) and calls["n"] > 1
    finally:
        await s.stop(0)
