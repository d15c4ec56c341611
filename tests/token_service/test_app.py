"""The running service: health, reflection, JWKS over gRPC, graceful stop."""

from __future__ import annotations

import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc
from token_service.app import TokenServiceApp
from token_service.testing import running_token_service


async def test_health_serving(channel: grpc.aio.Channel) -> None:
    """grpc.health.v1 reports SERVING for the server and for the OAuth service."""
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "native_iam.oauth.v1.OAuth"):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_services(channel: grpc.aio.Channel) -> None:
    """Server reflection lists the OAuth, Feed and health services (grpcurl works)."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = set()
    async for response in responses:
        names |= {s.name for s in response.list_services_response.service}
    assert {"native_iam.oauth.v1.OAuth", "native_iam.oauth.v1.Feed", "grpc.health.v1.Health"} <= names


async def test_get_jwks_returns_public_signing_key(feed: feed_pb2_grpc.FeedStub, service: TokenServiceApp) -> None:
    """Feed.GetJwks returns the signing key's public JWK and the cache lifetime."""
    response = await feed.GetJwks(feed_pb2.GetJwksRequest())
    jwks = json.loads(response.jwks_json)
    assert service.core.keys.signing_key().kid in {k["kid"] for k in jwks["keys"]}
    assert all("d" not in k for k in jwks["keys"]) and response.max_age_s == 300


async def test_stop_reports_not_serving_then_closes(sqlite_url: str) -> None:
    """stop(): health turns NOT_SERVING before the server goes away; later calls fail UNAVAILABLE."""
    async with running_token_service(sqlite_url) as app:
        channel = grpc.aio.insecure_channel(app.grpc_target)
        stub = health_pb2_grpc.HealthStub(channel)
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=""))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        await app.stop(0.2)
        app.stop = _noop  # type: ignore[method-assign]  # the context manager's own stop
        second = await watch.read()
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        await channel.close()


async def _noop(*_: object) -> None:
    return None


async def test_health_turns_serving_only_once_every_listener_is_up(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A probe that sees SERVING may send OAuth HTTP traffic: the HTTP port must be listening by then
    (before, health went SERVING first and a client that trusted it met a refused connection)."""
    from token_service.api.http import HttpServer
    from token_service.testing import settings_for_tests

    app = TokenServiceApp(settings_for_tests(sqlite_url))
    seen: list[int] = []
    real_start = HttpServer.start

    async def observed_start(self: HttpServer) -> None:
        response = await app.health.Check(health_pb2.HealthCheckRequest(service=""), None)
        seen.append(response.status)
        await real_start(self)

    monkeypatch.setattr(HttpServer, "start", observed_start)
    await app.start()
    try:
        assert seen == [health_pb2.HealthCheckResponse.NOT_SERVING]
        response = await app.health.Check(health_pb2.HealthCheckRequest(service=""), None)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await app.stop(0)
