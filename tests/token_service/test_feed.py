"""Feed.WatchRevocations: snapshot, catch-up, live events, heartbeats, compaction, two replicas."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc
from tests.token_service.conftest import add_identity
from token_service.access import check_access
from token_service.admin import service as admin
from token_service.app import TokenServiceApp
from token_service.errors import TokenInvalid
from token_service.feed import effective_set
from token_service.grants import create_token_with_password
from token_service.testing import FEED_METADATA, TEST_FEED_TOKEN, running_token_service

Kind = feed_pb2.WatchRevocationsResponse


async def _tokens(app: TokenServiceApp, identity: str = "alice", count: int = 1) -> list[str]:
    """Issue ``count`` access tokens; return their jtis."""
    await add_identity(app.core, identity, "pw-123456", ("a:b",))
    jtis = []
    for _ in range(count):
        issued = await create_token_with_password(app.core, namespace="", identity=identity, password="pw-123456")
        jtis.append(issued.access_jti)
    return jtis


async def _next(
    stream: AsyncIterator[feed_pb2.WatchRevocationsResponse], wait_s: float = 5
) -> feed_pb2.WatchRevocationsResponse:
    return await asyncio.wait_for(stream.__anext__(), wait_s)


async def _next_events(stream: AsyncIterator[feed_pb2.WatchRevocationsResponse]) -> feed_pb2.WatchRevocationsResponse:
    while True:
        message = await _next(stream)
        if message.kind == Kind.EVENTS:
            return message


def test_effective_set_keeps_newest_unlifted_unexpired() -> None:
    """Newest event per subject decides; lifted and expired subjects drop out."""
    R = feed_pb2.Revocation
    events = [
        R(sequence=1, target=feed_pb2.TOKEN, jti="a", expires_unix=100),
        R(sequence=2, target=feed_pb2.TOKEN, jti="a", expires_unix=100, lifted=True),
        R(sequence=3, target=feed_pb2.TOKEN, jti="b", expires_unix=100),
        R(sequence=4, target=feed_pb2.TOKEN, jti="c", expires_unix=10),
        R(sequence=5, target=feed_pb2.IDENTITY, identity="x", expires_unix=100),
    ]
    assert [r.sequence for r in effective_set(events, now_unix=50)] == [3, 5]


def test_effective_set_keeps_an_identity_deletion_beside_the_next_identitys_state() -> None:
    """Delete x, re-create, disable, enable: the deletion cut-off stays in force (snapshots and
    compaction keep it); the lifted disable drops out; a later policy cut sits beside it."""
    R, T = feed_pb2.Revocation, feed_pb2.IDENTITY
    deleted = R(sequence=1, target=T, reason=feed_pb2.IDENTITY_DELETED, identity="x", cutoff_unix=10, expires_unix=99)
    disabled = R(sequence=2, target=T, reason=feed_pb2.IDENTITY_DISABLED, identity="x", cutoff_unix=20, expires_unix=99)
    lifted = R(sequence=3, target=T, reason=feed_pb2.IDENTITY_DISABLED, identity="x", expires_unix=99, lifted=True)
    assert [r.sequence for r in effective_set([deleted, disabled, lifted], now_unix=50)] == [1]
    policy = R(sequence=4, target=T, reason=feed_pb2.POLICY_CHANGED, identity="x", cutoff_unix=40, expires_unix=99)
    assert [r.sequence for r in effective_set([deleted, disabled, lifted, policy], now_unix=50)] == [1, 4]


async def test_snapshot_on_cursor_zero(service: TokenServiceApp, feed: feed_pb2_grpc.FeedStub) -> None:
    """Cursor 0: one SNAPSHOT with reset and synced holding exactly the effective revocations."""
    disabled, deleted, revived = await _tokens(service, count=3)
    await admin.set_token_active(service.core, disabled, False)
    await admin.delete_token(service.core, deleted)
    await admin.set_token_active(service.core, revived, False)
    await admin.set_token_active(service.core, revived, True)
    await admin.set_identity_active(service.core, "", "alice", False)
    await service.feed._read_new()  # type: ignore[union-attr]
    stream = feed.WatchRevocations(
        feed_pb2.WatchRevocationsRequest(cursor=0, subscriber="test"), metadata=FEED_METADATA
    ).__aiter__()
    first = await _next(stream)
    assert first.kind == Kind.SNAPSHOT and first.reset and first.synced and first.cursor == 5
    got = {(r.target, r.reason, r.jti or r.identity) for r in first.revocations}
    assert got == {
        (feed_pb2.TOKEN, feed_pb2.TOKEN_DISABLED, disabled),
        (feed_pb2.TOKEN, feed_pb2.TOKEN_DELETED, deleted),
        (feed_pb2.IDENTITY, feed_pb2.IDENTITY_DISABLED, "alice"),
    }
    assert first.server_time_ms > 0


async def test_catch_up_from_cursor_then_synced(service: TokenServiceApp, feed: feed_pb2_grpc.FeedStub) -> None:
    """A cursor inside the log gets exactly the later events, the last one marked synced."""
    jtis = await _tokens(service, count=3)
    for jti in jtis:
        await admin.set_token_active(service.core, jti, False)
    await service.feed._read_new()  # type: ignore[union-attr]
    stream = feed.WatchRevocations(feed_pb2.WatchRevocationsRequest(cursor=1), metadata=FEED_METADATA).__aiter__()
    message = await _next(stream)
    assert message.kind == Kind.EVENTS and message.synced and message.cursor == 3
    assert [r.jti for r in message.revocations] == jtis[1:]


async def test_live_event_and_heartbeat(service: TokenServiceApp, feed: feed_pb2_grpc.FeedStub) -> None:
    """After sync, a new revocation arrives as EVENTS at once; idle streams get HEARTBEATs with the cursor."""
    (jti,) = await _tokens(service)
    stream = feed.WatchRevocations(feed_pb2.WatchRevocationsRequest(cursor=0), metadata=FEED_METADATA).__aiter__()
    assert (await _next(stream)).synced
    started = time.monotonic()
    await admin.set_token_active(service.core, jti, False)
    message = await _next_events(stream)
    assert time.monotonic() - started < 0.5
    assert message.revocations[0].jti == jti and message.cursor == message.revocations[0].sequence
    heartbeat = await _next(stream, wait_s=3)
    assert heartbeat.kind == Kind.HEARTBEAT and heartbeat.cursor == message.cursor


async def test_cursor_older_than_compaction_gets_snapshot(
    service: TokenServiceApp, feed: feed_pb2_grpc.FeedStub
) -> None:
    """After compaction removed events past a cursor, that cursor gets a fresh snapshot, not holes."""
    first, second = await _tokens(service, count=2)
    await admin.set_token_active(service.core, first, False)
    await admin.set_token_active(service.core, first, True)  # supersedes event 1
    await admin.set_token_active(service.core, second, False)
    hub = service.feed
    assert hub is not None
    hub.settings = dataclasses.replace(hub.settings, feed_retention_s=60)
    removed = await hub.compact(now=time.time() + 61)  # old enough, but second's token is still alive
    assert removed == 2  # events 1 and 2 (first's disable and its lifting)
    await service.feed._read_new()  # type: ignore[union-attr]
    stream = feed.WatchRevocations(feed_pb2.WatchRevocationsRequest(cursor=1), metadata=FEED_METADATA).__aiter__()
    message = await _next(stream)
    assert message.kind == Kind.SNAPSHOT and message.reset
    assert [r.jti for r in message.revocations] == [second]


async def test_policy_narrowing_and_identity_delete_are_events(
    service: TokenServiceApp, feed: feed_pb2_grpc.FeedStub
) -> None:
    """Narrowing a policy is a POLICY_CHANGED cut-off; deleting the identity an IDENTITY_DELETED one."""
    await _tokens(service)
    stream = feed.WatchRevocations(feed_pb2.WatchRevocationsRequest(cursor=0), metadata=FEED_METADATA).__aiter__()
    assert (await _next(stream)).synced
    await admin.set_policy(service.core, "", "alice", ["a:b", "c:d"])  # widening: no event
    await admin.set_policy(service.core, "", "alice", [])
    narrowed = (await _next_events(stream)).revocations[0]
    assert (narrowed.target, narrowed.reason, narrowed.identity) == (
        feed_pb2.IDENTITY,
        feed_pb2.POLICY_CHANGED,
        "alice",
    )
    assert narrowed.cutoff_unix <= time.time() < narrowed.expires_unix
    await admin.delete_identity(service.core, "", "alice")
    deleted = (await _next_events(stream)).revocations[0]
    assert deleted.reason == feed_pb2.IDENTITY_DELETED and deleted.sequence == narrowed.sequence + 1


async def test_stop_ends_streams(sqlite_url: str) -> None:
    """On shutdown open feed streams end promptly so clients reconnect elsewhere."""
    async with running_token_service(sqlite_url) as app:
        channel = grpc.aio.insecure_channel(app.grpc_target)
        stream = (
            feed_pb2_grpc.FeedStub(channel)
            .WatchRevocations(feed_pb2.WatchRevocationsRequest(), metadata=FEED_METADATA)
            .__aiter__()
        )
        assert (await _next(stream)).synced
        started = time.monotonic()
        await app.stop(5)
        app.stop = _noop  # type: ignore[method-assign]
        with pytest.raises((StopAsyncIteration, grpc.aio.AioRpcError)):
            while True:
                await _next(stream)
        assert time.monotonic() - started < 3
        await channel.close()


async def _noop(*_: object) -> None:
    return None


@pytest.mark.postgres
async def test_event_reaches_other_replica_within_100ms(postgres_url: str, tmp_path: Path) -> None:
    """Two processes on one PostgreSQL: an event written through one reaches a subscriber of the
    other within 100 ms (LISTEN/NOTIFY; the other's polling is set to 10 s so it cannot help)."""
    env = {
        **os.environ,
        "SYSTEM_DB_URL": postgres_url,
        "NATIVE_IAM_GRPC_LISTEN": "127.0.0.1:0",
        "NATIVE_IAM_METRICS_LISTEN": "off",
        "NATIVE_IAM_FEED_POLL_S": "10",
        "NATIVE_IAM_ARGON2_MEMORY_KIB": "256",
        "NATIVE_IAM_ARGON2_TIME_COST": "1",
        "NATIVE_IAM_FEED_TOKEN": TEST_FEED_TOKEN,
    }
    async with running_token_service(postgres_url) as writer:
        (jti,) = await _tokens(writer)
        other = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "native_iam.cli",
            "token-service",
            "--demo",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            target = await asyncio.wait_for(_read_target(other), 30)
            async with grpc.aio.insecure_channel(target) as channel:
                stream = (
                    feed_pb2_grpc.FeedStub(channel)
                    .WatchRevocations(feed_pb2.WatchRevocationsRequest(), metadata=FEED_METADATA)
                    .__aiter__()
                )
                assert (await _next(stream)).synced
                delays = []
                for _ in range(5):
                    started = time.monotonic()
                    await admin.set_token_active(writer.core, jti, False)
                    message = await _next_events(stream)
                    delays.append(time.monotonic() - started)
                    assert message.revocations[-1].jti == jti
                    await admin.set_token_active(writer.core, jti, True)
                    await _next_events(stream)
            assert max(delays) < 0.1, delays
        finally:
            other.terminate()
            await asyncio.wait_for(other.wait(), 20)


async def _read_target(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    while line := (await process.stdout.readline()).decode():
        match = re.search(r"running on (\S+) ", line)
        if match:
            return match.group(1)
    raise AssertionError("the second token service did not start")


@pytest.mark.postgres
async def test_key_retired_through_one_replica_is_refused_by_the_other(postgres_url: str) -> None:
    """A key retired through replica A stops verifying at replica B as soon as B sees the
    KEY_RETIRED event (not only at B's next periodic key reload)."""
    async with (
        running_token_service(postgres_url, key_reload_s=3600) as a,
        running_token_service(postgres_url, key_reload_s=3600) as b,
    ):
        await _tokens(a)
        issued = await create_token_with_password(a.core, namespace="", identity="alice", password="pw-123456")
        assert (await check_access(b.core, access_token=issued.access_token)).claims.sub == "alice"
        await a.core.keys.retire(a.core.keys.signing_key().kid)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                await check_access(b.core, access_token=issued.access_token)
            except TokenInvalid:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("replica B still accepts a token of the retired key")


async def test_cursor_ahead_of_the_database_gets_snapshot(
    service: TokenServiceApp, feed: feed_pb2_grpc.FeedStub
) -> None:
    """A cursor the database never reached (another database, a restored backup) gets a reset
    snapshot rather than silence."""
    (jti,) = await _tokens(service)
    await admin.set_token_active(service.core, jti, False)
    stream = feed.WatchRevocations(feed_pb2.WatchRevocationsRequest(cursor=10**9), metadata=FEED_METADATA).__aiter__()
    message = await _next(stream)
    assert message.kind == Kind.SNAPSHOT and message.reset and message.synced
    assert [r.jti for r in message.revocations] == [jti] and message.cursor == 1
