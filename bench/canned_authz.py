"""The floor: a do-nothing Envoy ext_authz server that answers every Check with a canned OK.

It does what any grpcio ext_authz server must do (HTTP/2, protobuf decode/encode, the servicer
call) and nothing else, so the sidecar's CPU per decision is compared against it in the same run.
Run several copies on one port for several processes (grpcio sets SO_REUSEPORT on Linux).

    python -m bench.canned_authz --listen 127.0.0.1:9191 [--mode sync|aio]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from concurrent import futures

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.rpc import status_pb2

_OK = external_auth_pb2.CheckResponse(status=status_pb2.Status(code=0))


class CannedAuthorization(external_auth_pb2_grpc.AuthorizationServicer):
    def Check(self, request: external_auth_pb2.CheckRequest, context: grpc.ServicerContext) -> object:
        return _OK


class AsyncCannedAuthorization(external_auth_pb2_grpc.AuthorizationServicer):
    async def Check(self, request: external_auth_pb2.CheckRequest, context: object) -> object:
        return _OK


def serve_sync(listen: str, threads: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(CannedAuthorization(), server)
    server.add_insecure_port(listen)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()


async def serve_aio(listen: str) -> None:
    server = grpc.aio.server()
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(AsyncCannedAuthorization(), server)
    server.add_insecure_port(listen)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--mode", choices=("sync", "aio"), default="sync")
    parser.add_argument("--threads", type=int, default=16, help="sync mode: thread-pool size")
    args = parser.parse_args(argv)
    if args.mode == "sync":
        serve_sync(args.listen, args.threads)
    else:
        asyncio.run(serve_aio(args.listen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
