"""The floors: do-nothing Envoy ext_authz servers that allow every request.

``sync``/``aio``: a grpcio server answering every Check with a canned OK. It does what any grpcio
ext_authz server must do (HTTP/2, protobuf decode/encode, the servicer call) and nothing else.
``http``: Envoy's ``http_service`` protocol on asyncio + httptools, the sidecar's HTTP transport's
server (sidecar/ext_authz_http.py) without the decision: every request parsed, answered 200.
``uvicorn``: the same over uvicorn with a raw ASGI app, the runner-up measured for that transport.
The sidecar's CPU per decision is compared against its transport's floor in the same run. Run
several copies on one port for several processes (grpcio and the ``http`` floor set SO_REUSEPORT).

    python -m bench.canned_authz --listen 127.0.0.1:9191 [--mode sync|aio|http|uvicorn]
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


_HTTP_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class _HttpFloor(asyncio.Protocol):
    """Parses each request with httptools (as the sidecar does) and answers 200, nothing else."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except Exception:
            assert self._transport is not None
            self._transport.close()

    def on_message_complete(self) -> None:
        assert self._transport is not None
        self._transport.write(_HTTP_OK)


async def serve_http(listen: str) -> None:
    from native_iam.runtime.listen import bind_tcp

    loop = asyncio.get_running_loop()
    server = await loop.create_server(_HttpFloor, sock=bind_tcp(listen, "--listen", reuse_port=True), backlog=1024)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()


async def _asgi_ok(scope: dict, receive: object, send: object) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]


def serve_uvicorn(listen: str) -> None:
    import uvicorn

    host, _, port = listen.rpartition(":")
    uvicorn.run(_asgi_ok, host=host, port=int(port), http="httptools", loop="asyncio", log_level="warning",
                access_log=False, lifespan="off")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--mode", choices=("sync", "aio", "http", "uvicorn"), default="sync")
    parser.add_argument("--threads", type=int, default=16, help="sync mode: thread-pool size")
    args = parser.parse_args(argv)
    if args.mode == "sync":
        serve_sync(args.listen, args.threads)
    elif args.mode == "http":
        asyncio.run(serve_http(args.listen))
    elif args.mode == "uvicorn":
        serve_uvicorn(args.listen)
    else:
        asyncio.run(serve_aio(args.listen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
