"""Many simulated sidecars on the token service's revocation feed: N ``WatchRevocations``
streams (one connection each, as N sidecars would have), recording when each stream receives
each revoked jti.

    python -m bench.feed_subscribers --target 127.0.0.1:50051 --subscribers 500 \
        --ready-file ready --out times.json --seconds 30

Writes ``ready-file`` once every stream has synced, then, after ``--seconds`` (or SIGTERM),
``out``: {jti: [receive times, Unix seconds, one per stream that saw it]}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections import defaultdict
from pathlib import Path

import grpc

from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc


async def subscribe(
    target: str, index: int, synced: asyncio.Event, counter: list[int], total: int, seen: dict[str, list[float]]
) -> None:
    async with grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        stub = feed_pb2_grpc.FeedStub(channel)
        request = feed_pb2.WatchRevocationsRequest(cursor=0, subscriber=f"bench-{index}")
        was_synced = False
        async for message in stub.WatchRevocations(request):
            now = time.time()
            if message.kind == message.EVENTS:
                for revocation in message.revocations:
                    if revocation.jti and not revocation.lifted:
                        seen[revocation.jti].append(now)
            if message.synced and not was_synced:
                was_synced = True
                counter[0] += 1
                if counter[0] == total:
                    synced.set()


async def main_async(args: argparse.Namespace) -> None:
    seen: dict[str, list[float]] = defaultdict(list)
    synced = asyncio.Event()
    counter = [0]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = [
        asyncio.create_task(subscribe(args.target, i, synced, counter, args.subscribers, seen))
        for i in range(args.subscribers)
    ]
    await asyncio.wait_for(synced.wait(), timeout=120)
    args.ready_file.write_text(str(time.time()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=args.seconds)
    args.out.write_text(json.dumps(seen))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this long at most")
    asyncio.run(main_async(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
