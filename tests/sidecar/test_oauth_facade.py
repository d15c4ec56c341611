"""sidecar/oauth_facade.py: the seed OAuth API for the workload (local CheckAccess, forwarded grants)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from native_iam.oauth.v1 import feed_pb2, oauth_pb2, oauth_pb2_grpc
from sidecar.decision import Deny, Reason
from sidecar.oauth_facade import OAuthFacade
from sidecar.revocations import RevocationCache
from sidecar.settings import Settings

from ._feed import AUDIENCE, ISSUER, Issuer, Kind, revocation
from ._stack import free_port
from .conftest import loaded_store, synced_cache

S = oauth_pb2.CheckAccessResponse.Status
T, R = feed_pb2.RevocationTarget, feed_pb2.RevocationReason


class FakeTokenService(oauth_pb2_grpc.OAuthServicer):
    """Stands in for the token service's OAuth API: records calls, answers fixed responses."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[Any] = []
        self.delay_s = delay_s

    async def CreateTokenWithPassword(self, request: Any, context: Any) -> Any:
        import asyncio

        self.calls.append(request)
        await asyncio.sleep(self.delay_s)
        return oauth_pb2.CreateTokenWithPasswordResponse(status=1, access_token="at", refresh_token="rt", expires_in=60)

    async def RefreshToken(self, request: Any, context: Any) -> Any:
        self.calls.append(request)
        if request.refresh_token == "bad-arg":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "refresh_token: too long")
        return oauth_pb2.RefreshTokenResponse(status=1, access_token="at2", expires_in=60)


def _settings(**kw: Any) -> Settings:
    return Settings(issuer=ISSUER, audiences=(AUDIENCE,), **kw)


def _facade(
    issuer: Issuer, revocations: RevocationCache | None = None, target: str = "127.0.0.1:1", **kw: Any
) -> OAuthFacade:
    channel = grpc.aio.insecure_channel(target)
    return OAuthFacade(
        _settings(token_url=target, **kw), loaded_store(issuer), revocations or synced_cache(), token_channel=channel
    )


async def test_check_access_ok_returns_identity_and_scopes(issuer: Issuer) -> None:
    """A valid token holding the scopes → OK with identity, namespace and the token's scopes."""
    r = _facade(issuer).check(issuer.mint("alice", "a b", namespace="shop"), ("a",))
    assert not isinstance(r, Deny)
    assert (r.status, r.identity, r.namespace, list(r.scopes)) == (S.OK, "alice", "shop", ["a", "b"])


async def test_check_access_missing_scope_is_unauthorized(issuer: Issuer) -> None:
    """A missing scope → UNAUTHORIZED naming it."""
    r = _facade(issuer).check(issuer.mint(scope="a"), ("a", "c"))
    assert not isinstance(r, Deny) and r.status == S.UNAUTHORIZED and r.message == "missing scope: c"


async def test_check_access_expired_is_token_expired(issuer: Issuer) -> None:
    """An expired token → TOKEN_EXPIRED."""
    r = _facade(issuer).check(issuer.mint(now=time.time() - 3600, ttl=60), ())
    assert isinstance(r, Deny) and r.check_status == S.TOKEN_EXPIRED


async def test_check_access_bad_token_is_token_invalid(issuer: Issuer) -> None:
    """A forged or malformed token → TOKEN_INVALID."""
    r = _facade(issuer).check(Issuer().mint(), ())
    assert isinstance(r, Deny) and r.check_status == S.TOKEN_INVALID


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        (R.TOKEN_DISABLED, S.TOKEN_DISABLED),
        (R.TOKEN_DELETED, S.TOKEN_NOT_FOUND),
        (R.IDENTITY_DELETED, S.TOKEN_NOT_FOUND),
    ],
)
async def test_check_access_revoked_maps_reason_to_status(issuer: Issuer, reason: int, status: int) -> None:
    """A revoked token answers TOKEN_DISABLED / TOKEN_NOT_FOUND from the revocation reason."""
    cache = synced_cache()
    cache.apply(
        feed_pb2.WatchRevocationsResponse(
            kind=Kind.EVENTS, cursor=1, revocations=[revocation(1, T.TOKEN, reason, jti="r")]
        )
    )
    r = _facade(issuer, cache).check(issuer.mint(jti="r"), ())
    assert isinstance(r, Deny) and r.check_status == status


async def test_check_access_stale_feed_is_feed_stale(issuer: Issuer) -> None:
    """With a stale feed (policy closed), CheckAccess does not answer from the cache."""
    r = _facade(issuer, synced_cache(max_staleness_s=0.0)).check(issuer.mint(), ())
    assert isinstance(r, Deny) and r.reason is Reason.FEED_STALE


@pytest.fixture
async def fake_token_service() -> AsyncIterator[tuple[str, FakeTokenService]]:
    fake = FakeTokenService()
    server = grpc.aio.server()
    oauth_pb2_grpc.add_OAuthServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", fake
    await server.stop(0)


@pytest.fixture
async def facade_stub(
    issuer: Issuer, fake_token_service: tuple[str, FakeTokenService]
) -> AsyncIterator[oauth_pb2_grpc.OAuthStub]:
    target, _ = fake_token_service
    server = grpc.aio.server()
    oauth_pb2_grpc.add_OAuthServicer_to_server(_facade(issuer, target=target, forward_timeout_s=0.5), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield oauth_pb2_grpc.OAuthStub(channel)
    await server.stop(0)


async def test_password_grant_is_forwarded(
    facade_stub: oauth_pb2_grpc.OAuthStub, fake_token_service: tuple[str, FakeTokenService]
) -> None:
    """CreateTokenWithPassword reaches the token service unchanged and its answer comes back."""
    request = oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password="pw", scopes=["a"])
    response = await facade_stub.CreateTokenWithPassword(request)
    assert response.access_token == "at" and fake_token_service[1].calls == [request]


async def test_refresh_is_forwarded(facade_stub: oauth_pb2_grpc.OAuthStub) -> None:
    """RefreshToken is forwarded to the token service."""
    assert (await facade_stub.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token="rt"))).access_token == "at2"


async def test_token_service_errors_pass_through(facade_stub: oauth_pb2_grpc.OAuthStub) -> None:
    """INVALID_ARGUMENT from the token service reaches the workload as such."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await facade_stub.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token="bad-arg"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_unreachable_token_service_is_unavailable(issuer: Issuer) -> None:
    """With the token service down, forwarded calls fail fast with UNAVAILABLE and a clear message."""
    dead = f"127.0.0.1:{free_port()}"
    server = grpc.aio.server()
    oauth_pb2_grpc.add_OAuthServicer_to_server(_facade(issuer, target=dead, forward_timeout_s=0.5), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await oauth_pb2_grpc.OAuthStub(channel).RefreshToken(
                    oauth_pb2.RefreshTokenRequest(refresh_token="x"), timeout=5
                )
    finally:
        await server.stop(0)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "cannot be reached" in (info.value.details() or "")


async def test_check_access_over_grpc_rejects_oversized_token(facade_stub: oauth_pb2_grpc.OAuthStub) -> None:
    """An access_token over 8192 bytes is INVALID_ARGUMENT, not INTERNAL."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await facade_stub.CheckAccess(oauth_pb2.CheckAccessRequest(access_token="a" * 9000))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_check_access_over_grpc_rejects_invalid_scope(
    facade_stub: oauth_pb2_grpc.OAuthStub, issuer: Issuer
) -> None:
    """An invalid scope string is INVALID_ARGUMENT naming the field."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await facade_stub.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=issuer.mint(), scopes=['a"b']))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "scopes" in (info.value.details() or "")


async def test_check_access_over_grpc_ok(facade_stub: oauth_pb2_grpc.OAuthStub, issuer: Issuer) -> None:
    """CheckAccess over gRPC answers OK for a valid token."""
    response = await facade_stub.CheckAccess(
        oauth_pb2.CheckAccessRequest(access_token=issuer.mint(scope="a"), scopes=["a"])
    )
    assert response.status == S.OK
