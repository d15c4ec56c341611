"""Feed fan-out: live messages shared between streams, and many streams woken at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc
from tests.token_service.test_feed import _next, _next_events, _tokens
from token_service.admin import service as admin
from token_service.app import TokenServiceApp
from token_service.feed import FeedHub
from token_service.testing import FEED_METADATA

Kind = feed_pb2.WatchRevocationsResponse


async def _revoke(service: TokenServiceApp, jti: str) -> None:
    await admin.set_token_active(service.core, jti, False)
    await service.feed._read_new()  # type: ignore[union-attr]


async def _synced_at(hub: FeedHub, cursor: int) -> tuple[AsyncIterator[Any], int]:
    """A stream straight on the hub, caught up from ``cursor``; returns it and its new cursor."""
    stream = hub.watch(feed_pb2.WatchRevocationsRequest(cursor=cursor), None).__aiter__()  # type: ignore[arg-type]
    message = await _next(stream)
    assert message.kind == Kind.EVENTS and message.synced
    return stream, message.cursor


async def test_streams_at_different_cursors_each_get_exactly_their_continuation(service: TokenServiceApp) -> None:
    """Two live streams one event apart get each its own continuation: nothing skipped, nothing extra."""
    hub = service.feed
    assert hub is not None
    jtis = await _tokens(service, count=5)
    for jti in jtis[:3]:
        await _revoke(service, jti)
    first = hub.head - 2  # the first of the three events
    behind, behind_cursor = await _synced_at(hub, first)
    twin, twin_cursor = await _synced_at(hub, first + 1)
    await _revoke(service, jtis[3])
    ahead, ahead_cursor = await _synced_at(hub, behind_cursor)
    assert (behind_cursor, twin_cursor, ahead_cursor) == (first + 2, first + 2, first + 3)
    await _revoke(service, jtis[4])
    try:
        # Behind first, so a message shared by mistake would hand the stream ahead an extra
        # event, or (in the other order) the stream behind would skip one.
        got_behind = await _next(behind)
        got_ahead = await _next(ahead)
        got_twin = await _next(twin)
    finally:
        for stream in (behind, ahead, twin):
            await stream.aclose()  # type: ignore[attr-defined]
    assert [r.jti for r in got_behind.revocations] == jtis[3:5] and got_behind.cursor == hub.head
    assert [r.jti for r in got_ahead.revocations] == jtis[4:5] and got_ahead.cursor == hub.head
    assert got_twin is got_behind  # one message built for both streams at that cursor


async def test_ahead_stream_first_does_not_make_the_stream_behind_skip(service: TokenServiceApp) -> None:
    """The stream ahead builds its continuation first; the stream behind still gets both events."""
    hub = service.feed
    assert hub is not None
    jtis = await _tokens(service, count=4)
    for jti in jtis[:2]:
        await _revoke(service, jti)
    behind, behind_cursor = await _synced_at(hub, hub.head - 1)
    await _revoke(service, jtis[2])
    ahead, _ = await _synced_at(hub, behind_cursor)
    await _revoke(service, jtis[3])
    try:
        got_ahead = await _next(ahead)
        got_behind = await _next(behind)
    finally:
        for stream in (behind, ahead):
            await stream.aclose()  # type: ignore[attr-defined]
    assert [r.jti for r in got_ahead.revocations] == jtis[3:4]
    assert [r.jti for r in got_behind.revocations] == jtis[2:4] and got_behind.cursor == hub.head


async def test_two_hundred_streams_all_receive_a_revocation(service: TokenServiceApp) -> None:
    """200 concurrent synced streams (on 4 connections) each receive a new revocation."""
    (jti,) = await _tokens(service)
    channels = [grpc.aio.insecure_channel(service.grpc_target) for _ in range(4)]
    try:
        stubs = [feed_pb2_grpc.FeedStub(channel) for channel in channels]
        streams = [
            stubs[i % 4]
            .WatchRevocations(feed_pb2.WatchRevocationsRequest(cursor=0, subscriber=f"s{i}"), metadata=FEED_METADATA)
            .__aiter__()
            for i in range(200)
        ]
        synced = await asyncio.gather(*(_next(stream, wait_s=30) for stream in streams))
        assert all(message.synced for message in synced)
        await admin.set_token_active(service.core, jti, False)
        received = await asyncio.gather(*(_next_events(stream) for stream in streams))
        assert all([r.jti for r in message.revocations] == [jti] for message in received)
        assert len({message.cursor for message in received}) == 1
    finally:
        for channel in channels:
            await channel.close()
