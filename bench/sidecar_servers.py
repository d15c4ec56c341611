"""Measure which gRPC server the sidecar should run: grpcio sync (thread pool) or grpc.aio.

Usage:  python bench/sidecar_servers.py [--seconds 5] [--connections 4] [--streams 32]

For each server kind (sync, aio) and handler (``canned``: a prebuilt OK CheckResponse, the floor;
``sidecar``: the real sidecar Check handler answering a cached valid token) and worker count
(1, 2 processes sharing the port with SO_REUSEPORT), it starts the server in subprocesses, drives
``Check`` with h2load (a C load generator speaking gRPC framing over HTTP/2) and reports Check/s
and the server's CPU seconds per Check. The load generator shares the 2 cores with the server:
compare rows with each other, not with the issue's through-Envoy figures.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ISSUER = "http://bench.test"
SERVICE = "envoy.service.auth.v3.Authorization"
PATH = f"/{SERVICE}/Check"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _issue(jwks_path: str) -> bytes:
    """Generate a signing key, write its JWKS to ``jwks_path``; return a realistic CheckRequest."""
    import json
    import uuid

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec
    from envoy.service.auth.v3 import external_auth_pb2
    from google.protobuf import struct_pb2
    from jwt.algorithms import ECAlgorithm

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": "bench", "alg": "ES256", "use": "sig"}
    Path(jwks_path).write_text(json.dumps({"keys": [jwk]}))
    now = int(time.time())
    claims = {
        "iss": ISSUER, "sub": "bench-user", "aud": "native-iam", "client_id": "bench", "iat": now, "nbf": now,
        "exp": now + 3600, "jti": uuid.uuid4().hex, "scope": "orders:read orders:list", "namespace": "shop",
        "token_usage": "access_token",
    }  # fmt: skip
    token = jwt.encode(claims, key, algorithm="ES256", headers={"typ": "at+jwt", "kid": "bench"})
    # Shaped like what Envoy sends: addresses, a dozen headers, route metadata.
    request = external_auth_pb2.CheckRequest()
    a = request.attributes
    a.source.address.socket_address.address = "127.0.0.1"
    a.source.address.socket_address.port_value = 40000
    a.destination.address.socket_address.address = "127.0.0.1"
    a.destination.address.socket_address.port_value = 10000
    http = a.request.http
    http.id, http.method, http.path, http.host = "1234567890", "GET", "/orders/42", "orders.shop.svc"
    http.scheme, http.protocol = "http", "HTTP/1.1"
    http.headers.update({
        ":authority": "orders.shop.svc", ":method": "GET", ":path": "/orders/42", ":scheme": "http",
        "user-agent": "wrk", "accept": "*/*", "x-forwarded-proto": "http",
        "x-request-id": "5f0c6b1e-9a8e-4c1b-8f57-1c1a2b3c4d5e", "authorization": f"Bearer {token}",
    })  # fmt: skip
    md = struct_pb2.Struct()
    md.update({"scopes": "orders:read"})
    a.route_metadata_context.filter_metadata["native_iam"].CopyFrom(md)
    return request.SerializeToString()


def _authorizer(jwks_path: str):  # type: ignore[no-untyped-def]
    """The real sidecar core, keys loaded from ``jwks_path`` and the feed synced (empty)."""
    from native_iam.oauth.v1 import feed_pb2
    from sidecar.authorization import Authorizer
    from sidecar.keys import KeyStore
    from sidecar.metrics import Metrics
    from sidecar.revocations import RevocationCache
    from sidecar.settings import Settings

    jwks = Path(jwks_path).read_text()
    keys = KeyStore(lambda: (jwks, 300.0), max_age_s=86400, min_refetch_s=5)
    keys.refresh()
    revocations = RevocationCache(max_staleness_s=86400)
    kind = feed_pb2.WatchRevocationsResponse.Kind
    revocations.apply(feed_pb2.WatchRevocationsResponse(kind=kind.SNAPSHOT, reset=True, synced=True))
    return Authorizer(Settings(issuer=ISSUER), keys, revocations, Metrics())


def _handler(mode: str, kind: str, jwks_path: str):
    import grpc
    from envoy.service.auth.v3 import external_auth_pb2
    from google.rpc import code_pb2, status_pb2

    if mode == "canned":
        canned = external_auth_pb2.CheckResponse(status=status_pb2.Status(code=code_pb2.OK)).SerializeToString()

        def check(request, context):
            return canned

        async def acheck(request, context):
            return canned

    else:
        from sidecar.ext_authz_grpc import GrpcCheck

        grpc_check = GrpcCheck(_authorizer(jwks_path))
        check = grpc_check.check_sync

        async def acheck(request, context):
            return await grpc_check.check_async(request)

    def serialize(response) -> bytes:
        return response if response.__class__ is bytes else response.SerializeToString()

    behaviour = check if kind == "sync" else acheck
    handler = grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=external_auth_pb2.CheckRequest.FromString,
        response_serializer=serialize,
    )
    return grpc.method_handlers_generic_handler(SERVICE, {"Check": handler})


def serve(kind: str, mode: str, port: int, jwks_path: str, threads: int) -> None:
    import grpc

    options = [("grpc.so_reuseport", 1)]
    if kind == "sync":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads), options=options)
        server.add_generic_rpc_handlers((_handler(mode, kind, jwks_path),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
        print("ready", flush=True)
        server.wait_for_termination()
    else:
        import asyncio

        async def main() -> None:
            server = grpc.aio.server(options=options)
            server.add_generic_rpc_handlers((_handler(mode, kind, jwks_path),))
            server.add_insecure_port(f"127.0.0.1:{port}")
            await server.start()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(server.stop(0)))
            print("ready", flush=True)
            await server.wait_for_termination()

        asyncio.run(main())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(
    kind_spec: str, mode: str, workers: int, args: argparse.Namespace, body_path: str, jwks_path: str
) -> dict[str, float]:
    kind, _, threads = kind_spec.partition(":")  # "sync:2" = sync server with 2 threads
    port = _free_port()
    procs = []
    for _ in range(workers):
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "serve",
                "--kind",
                kind,
                "--mode",
                mode,
                "--port",
                str(port),
                "--jwks",
                jwks_path,
                "--threads",
                threads or str(args.threads),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("server did not start")
        procs.append(proc)
    h2load = [
        "h2load",
        "-D",
        str(int(args.seconds)),
        "--warm-up-time=1",
        "-c",
        str(args.connections),
        "-m",
        str(args.streams),
        "-d",
        body_path,
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        f"http://127.0.0.1:{port}{PATH}",
    ]
    try:
        cpu_before = sum(_cpu_seconds(p.pid) for p in procs)
        out = subprocess.run(h2load, capture_output=True, text=True, check=True).stdout
        cpu_after = sum(_cpu_seconds(p.pid) for p in procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    if not done or not rate:
        raise RuntimeError(f"cannot parse h2load output:\n{out}")
    n = int(done.group(2))
    # warm-up requests are not counted by h2load but do cost CPU: scale by the measured window
    total_window = args.seconds + 1
    cpu = (cpu_after - cpu_before) * args.seconds / total_window
    return {"rps": float(rate.group(1)), "ok": n, "cpu_us_per_check": 1e6 * cpu / max(n, 1)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd")
    s = sub.add_parser("serve")
    s.add_argument("--kind", choices=["sync", "aio"], required=True)
    s.add_argument("--threads", type=int, default=3, help="sync server thread pool (the sidecar's default: 3)")
    s.add_argument("--mode", choices=["canned", "sidecar"], required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--jwks", required=True)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--modes", default="canned,sidecar")
    parser.add_argument("--kinds", default="sync,aio", help='server kinds; "sync:N" sets the thread count')
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--threads", type=int, default=3, help="sync server thread pool size")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case, interleaved; the median is reported")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        serve(args.kind, args.mode, args.port, args.jwks, args.threads)
        return 0
    if shutil.which("h2load") is None:
        print("h2load is not on PATH (apt-get install nghttp2-client)", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="sidecar-bench-")
    jwks_path = os.path.join(workdir, "jwks.json")
    body_path = os.path.join(workdir, "check.grpc")
    body = _issue(jwks_path)
    Path(body_path).write_bytes(b"\x00" + len(body).to_bytes(4, "big") + body)
    cases = [
        (mode, kind, int(workers))
        for mode in args.modes.split(",")
        for kind in args.kinds.split(",")
        for workers in args.workers.split(",")
    ]
    results: dict[tuple[str, str, int], list[dict[str, float]]] = {case: [] for case in cases}
    try:
        # Interleave the repetitions so that a burst of load from elsewhere hits every case alike.
        for _ in range(args.repeat):
            for case in cases:
                results[case].append(run_case(case[1], case[0], case[2], args, body_path, jwks_path))
        print(f"{'mode':<8} {'server':<7} {'workers':>7} {'Check/s':>9} {'CPU µs/Check':>13}  runs (Check/s)")
        for (mode, kind, workers), runs in results.items():
            rps = sorted(r["rps"] for r in runs)
            cpu = sorted(r["cpu_us_per_check"] for r in runs)
            median_rps, median_cpu = rps[len(rps) // 2], cpu[len(cpu) // 2]
            spread = " ".join(f"{r:.0f}" for r in rps)
            print(f"{mode:<8} {kind:<7} {workers:>7} {median_rps:>9.0f} {median_cpu:>13.0f}  {spread}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
