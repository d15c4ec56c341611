"""A stand-in for the token service's ``native_iam.oauth.v1.Feed``: serves a fixed JWKS and a
revocation snapshot of N synthetic jti, then heartbeats. It lets the sidecar scenarios run
without a token service (scenarios 1–3) and gives scenario 6 a snapshot of any size to sync.

    python -m bench.fake_feed --listen 127.0.0.1:50051 --jwks-file jwks.json [--revoked 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc

CHUNK = 5000
Response = feed_pb2.WatchRevocationsResponse


def revoked_jti(index: int) -> str:
    """The jti of the ``index``-th revoked token: 32 hex digits like a real (uuid4) jti, but
    predictable, so that a benchmark can mint a token that must be denied."""
    return f"{index:032x}"


def snapshot(count: int, chunk: int = CHUNK) -> list[Response]:
    """``count`` token revocations in snapshot chunks, the first with ``reset``, the last ``synced``."""
    expires = int(time.time()) + 24 * 3600
    messages: list[Response] = []
    for start in range(0, count, chunk):
        revocations = [
            feed_pb2.Revocation(
                sequence=start + i + 1,
                target=feed_pb2.TOKEN,
                reason=feed_pb2.TOKEN_DISABLED,
                jti=revoked_jti(start + i),
                expires_unix=expires,
            )
            for i in range(min(chunk, count - start))
        ]
        messages.append(Response(kind=Response.SNAPSHOT, revocations=revocations, cursor=start + len(revocations)))
    if not messages:
        messages.append(Response(kind=Response.SNAPSHOT, cursor=0))
    messages[0].reset = True
    messages[-1].synced = True
    return messages


class FakeFeed(feed_pb2_grpc.FeedServicer):
    def __init__(self, jwks_json: str, messages: list[Response], heartbeat_s: float) -> None:
        self.jwks_json = jwks_json
        self.messages = messages
        self.cursor = messages[-1].cursor
        self.heartbeat_s = heartbeat_s

    async def GetJwks(self, request: feed_pb2.GetJwksRequest, context: object) -> feed_pb2.GetJwksResponse:
        return feed_pb2.GetJwksResponse(jwks_json=self.jwks_json, max_age_s=300)

    async def WatchRevocations(
        self, request: feed_pb2.WatchRevocationsRequest, context: object
    ) -> AsyncIterator[Response]:
        if request.cursor == 0 or request.cursor != self.cursor:
            for message in self.messages:
                message.server_time_ms = int(time.time() * 1000)
                yield message
        else:
            yield Response(kind=Response.EVENTS, cursor=self.cursor, synced=True)
        while True:
            await asyncio.sleep(self.heartbeat_s)
            yield Response(kind=Response.HEARTBEAT, cursor=self.cursor, server_time_ms=int(time.time() * 1000))


async def serve(listen: str, feed: FakeFeed) -> None:
    server = grpc.aio.server(options=[("grpc.max_send_message_length", 64 << 20)])
    feed_pb2_grpc.add_FeedServicer_to_server(feed, server)
    server.add_insecure_port(listen)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"fake feed on {listen}: {len(feed.messages)} snapshot messages, cursor {feed.cursor}", flush=True)
    await stop.wait()
    await server.stop(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--jwks-file", type=Path, required=True)
    parser.add_argument("--revoked", type=int, default=0, help="number of revoked jti in the snapshot")
    parser.add_argument("--heartbeat-s", type=float, default=2.0)
    args = parser.parse_args(argv)
    feed = FakeFeed(args.jwks_file.read_text(), snapshot(args.revoked), args.heartbeat_s)
    asyncio.run(serve(args.listen, feed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
