"""A gRPC Check load client for requests that differ per call (h2load sends one fixed body):
every call carries the next token from a file, so each token is seen once (uncached decisions).

    python -m bench.check_client --target 127.0.0.1:9191 --tokens tokens.txt --seconds 5

Prints one JSON line: calls done, allowed, errors, and the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import grpc
from envoy.service.auth.v3 import external_auth_pb2

from bench._stack import check_request


async def drive(target: str, tokens: list[str], seconds: float, concurrency: int) -> dict[str, float]:
    requests = iter([check_request(token).SerializeToString() for token in tokens])
    counts = {"done": 0, "allowed": 0, "errors": 0}
    async with grpc.aio.insecure_channel(target) as channel:
        check = channel.unary_unary(
            "/envoy.service.auth.v3.Authorization/Check",
            request_serializer=None,
            response_deserializer=external_auth_pb2.CheckResponse.FromString,
        )
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            for body in requests:
                if time.monotonic() > deadline:
                    return
                try:
                    answer = await check(body, timeout=5)
                except grpc.RpcError:
                    counts["errors"] += 1
                    continue
                counts["done"] += 1
                counts["allowed"] += answer.status.code == 0

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {**counts, "seconds": time.monotonic() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--tokens", type=Path, required=True, help="one token per line")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    tokens = args.tokens.read_text().split()
    print(json.dumps(asyncio.run(drive(args.target, tokens, args.seconds, args.concurrency))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
