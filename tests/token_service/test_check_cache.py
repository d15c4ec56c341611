"""token_service/check_cache.py and its use by CheckAccess: cached only while the feed tail is
fresh, void on every revocation event, a revoked token refused at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.conftest import add_identity
from token_service.access import check_access
from token_service.admin import service as admin
from token_service.check_cache import CheckCache
from token_service.testing import running_token_service
from token_service.tokens import TokenClaims

CheckStatus = oauth_pb2.CheckAccessResponse


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _claims() -> TokenClaims:
    now = int(time.time())
    return TokenClaims("j", "access_token", "a", "", ("s",), "c", ("aud",), now, now, now + 600, "k")


def test_unused_until_the_tail_has_read() -> None:
    """Before the feed tail ever read the events table, nothing is answered from the cache."""
    cache = CheckCache(max_entries=10, ttl_s=60, max_staleness_s=2)
    cache.put("t", _claims(), cache.generation, time.time())
    assert cache.get("t") is None


def test_hit_while_fresh() -> None:
    """With a fresh tail, a stored token is answered from the cache."""
    cache = CheckCache(max_entries=10, ttl_s=60, max_staleness_s=2)
    cache.tail_read(0)
    cache.put("t", _claims(), cache.generation, time.time())
    assert cache.get("t") == _claims()


def test_stale_tail_fails_closed() -> None:
    """When the tail has not read for max_staleness_s, every check goes to the database again."""
    clock = Clock()
    cache = CheckCache(max_entries=10, ttl_s=600, max_staleness_s=2, clock=clock)
    cache.tail_read(0)
    cache.put("t", _claims(), cache.generation, time.time())
    clock.t += 3
    assert cache.get("t") is None


def test_events_read_by_the_tail_void_entries() -> None:
    """Events the tail reads (written by any replica) void what was cached before."""
    cache = CheckCache(max_entries=10, ttl_s=60, max_staleness_s=2)
    cache.tail_read(0)
    cache.put("t", _claims(), cache.generation, time.time())
    cache.tail_read(1)
    assert cache.get("t") is None


def test_entry_stored_under_an_older_generation_never_matches() -> None:
    """A check that read the generation before a revocation committed cannot store a live entry."""
    cache = CheckCache(max_entries=10, ttl_s=60, max_staleness_s=2)
    cache.tail_read(0)
    before = cache.generation
    cache.invalidate()  # a revocation committed while the check was reading the store
    cache.put("t", _claims(), before, time.time())
    assert cache.get("t") is None


async def _token(stub: oauth_pb2_grpc.OAuthStub) -> str:
    answer = await stub.CreateTokenWithPassword(
        oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password="s3cret-pass")
    )
    assert answer.status == answer.OK
    return str(answer.access_token)


async def test_check_is_answered_from_the_cache(tmp_path: Path) -> None:
    """A second CheckAccess of the same token is a cache hit (no second store read)."""
    async with running_token_service(f"sqlite:///{tmp_path / 'c.db'}") as app:
        await add_identity(app.core, "alice", policy=("orders:read",))
        async with grpc.aio.insecure_channel(app.grpc_target) as channel:
            stub = oauth_pb2_grpc.OAuthStub(channel)
            token = await _token(stub)
            await asyncio.sleep(0.2)  # the tail has read at least once
            first = await stub.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=token, scopes=["orders:read"]))
            assert first.status == CheckStatus.OK
            assert app.core.checks.get(token) is not None


async def test_revoked_token_is_refused_at_once(tmp_path: Path) -> None:
    """Disabling a cached token makes the very next CheckAccess refuse it."""
    async with running_token_service(f"sqlite:///{tmp_path / 'c.db'}") as app:
        await add_identity(app.core, "alice", policy=("orders:read",))
        async with grpc.aio.insecure_channel(app.grpc_target) as channel:
            stub = oauth_pb2_grpc.OAuthStub(channel)
            token = await _token(stub)
            await asyncio.sleep(0.2)
            await check_access(app.core, access_token=token)
            jti = app.core.codec.verify(token).jti
            await admin.set_token_active(app.core, jti, False)
            answer = await stub.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=token))
            assert answer.status == CheckStatus.TOKEN_DISABLED


async def test_revocation_through_another_replica_is_seen_by_the_tail(tmp_path: Path) -> None:
    """A token cached by replica B is refused by B once its tail reads A's revocation event."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with running_token_service(url) as a, running_token_service(url) as b:
        await add_identity(a.core, "alice", policy=("orders:read",))
        async with grpc.aio.insecure_channel(b.grpc_target) as channel:
            stub = oauth_pb2_grpc.OAuthStub(channel)
            token = await _token(stub)
            await asyncio.sleep(0.2)
            assert (await check_access(b.core, access_token=token)).claims.sub == "alice"
            assert b.core.checks.get(token) is not None
            await admin.set_identity_active(a.core, "", "alice", False)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                answer = await stub.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=token))
                if answer.status == CheckStatus.TOKEN_DISABLED:
                    break
                await asyncio.sleep(0.01)
            assert answer.status == CheckStatus.TOKEN_DISABLED


def test_workers_share_revocations_at_once() -> None:
    """Two workers' caches sharing one counter: a revocation committed by one voids the other's
    entries at once, before its feed tail has read the event."""
    import multiprocessing

    shared = multiprocessing.get_context("spawn").Value("Q", 0)
    one = CheckCache(max_entries=10, ttl_s=60, max_staleness_s=60)
    other = CheckCache(max_entries=10, ttl_s=60, max_staleness_s=60)
    one.shared = other.shared = shared
    other.tail_read(0)
    other.put("t", _claims(), other.generation, time.time())
    assert other.get("t") is not None
    one.invalidate()
    assert other.get("t") is None
