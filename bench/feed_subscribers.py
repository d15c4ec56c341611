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
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import grpc

from native_iam._procs import Process
from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc
from token_service.testing import FEED_METADATA

ROOT = Path(__file__).resolve().parent.parent


async def subscribe(
    target: str, index: int, synced: asyncio.Event, counter: list[int], total: int, seen: dict[str, list[float]]
) -> None:
    async with grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        stub = feed_pb2_grpc.FeedStub(channel)
        request = feed_pb2.WatchRevocationsRequest(cursor=0, subscriber=f"bench-{index}")
        was_synced = False
        async for message in stub.WatchRevocations(request, metadata=FEED_METADATA):
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


@dataclass
class Fleet:
    """The harness's side: ``n`` subscribers spread over a few processes of this module."""

    n: int
    members: list[tuple[Process, Path, Path]]  # (process, ready file, output file)

    @classmethod
    def start(cls, workdir: Path, target: str, n: int, *, tag: str = "", processes: int = 2) -> Fleet:
        shares = [n // processes + (i < n % processes) for i in range(processes)]
        members = []
        for i, share in enumerate(shares):
            ready, out = workdir / f"subs{tag}-{i}.ready", workdir / f"subs{tag}-{i}.json"
            ready.unlink(missing_ok=True)
            argv = [sys.executable, "-m", "bench.feed_subscribers", "--target", target, "--subscribers", str(share)]
            argv += ["--ready-file", str(ready), "--out", str(out), "--seconds", "600"]
            log = workdir / f"subs{tag}-{i}.log"
            members.append((Process(f"subscribers-{i}", argv, log_path=log, cwd=ROOT).start(), ready, out))
        return cls(n, members)

    def wait_synced(self, timeout: float = 180) -> None:
        for process, ready, _ in self.members:
            process.wait_until(ready.exists, timeout=timeout, what="synced on every stream")

    def cpu_seconds(self) -> float:
        from bench._system import cpu_seconds

        return sum(cpu_seconds(p.pid or 0) for p, _, _ in self.members)

    def stop(self) -> None:
        """SIGTERM: each process writes what its streams received, then exits."""
        for process, _, _ in self.members:
            process.stop(timeout=30)

    def last_arrivals(self, revoked: dict[str, float]) -> list[float]:
        """Per revocation that reached every subscriber (``revoked``: jti → revoke time): seconds
        to the last of them, sorted. Call after :meth:`stop`."""
        seen: dict[str, list[float]] = defaultdict(list)
        for _, _, out in self.members:
            for jti, times in json.loads(out.read_text()).items():
                seen[jti].extend(times)
        return sorted(max(seen[j]) - t for j, t in revoked.items() if len(seen[j]) >= self.n)


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
