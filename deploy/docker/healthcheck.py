"""Container health probe: asks a ``grpc.health.v1.Health`` server whether it is SERVING.

Used by the Dockerfile's HEALTHCHECK and by the sidecar container's exec probe in Kubernetes
(the sidecar binds 127.0.0.1, which a kubelet ``grpc:`` probe cannot reach; an exec probe runs
inside the pod's network namespace and can).

    python healthcheck.py [--alive] [HOST:PORT ...]

With no address it probes the addresses of both roles as configured in the environment
(``NATIVE_IAM_GRPC_LISTEN`` for the token service, ``NATIVE_IAM_AUTHZ_LISTEN`` for the sidecar),
because one image runs either role. Exit status 0 when any probed address answers SERVING for
the overall service (""), 1 otherwise (also on a bad address: Docker reserves 2).

``--alive`` accepts any health answer, NOT_SERVING included: the liveness question "is the
process responsive?". A sidecar that is NOT_SERVING because the token service is unreachable
must not be restarted, or it would lose the last-known-good keys it is allowed to keep using.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# The components' documented defaults (docs/configuration.md).
DEFAULT_LISTENS = {
    "NATIVE_IAM_GRPC_LISTEN": "0.0.0.0:50051",
    "NATIVE_IAM_AUTHZ_LISTEN": "127.0.0.1:9191",
}
TIMEOUT_S = 2.0


def probe_target(listen: str) -> str:
    """The address to dial for a listen address: a wildcard host becomes loopback."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not a HOST:PORT address: {listen!r}")
    if host in {"", "0.0.0.0", "[::]", "::"}:
        host = "127.0.0.1"
    return f"{host}:{port}"


def targets_from_env(environ: Mapping[str, str]) -> list[str]:
    return [probe_target(environ.get(name) or default) for name, default in DEFAULT_LISTENS.items()]


def health_status(target: str, timeout_s: float = TIMEOUT_S) -> int | None:
    """The overall status ``target`` reports, or None when it does not answer in time."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError:
            return None
    return int(reply.status)


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    alive_only = "--alive" in argv
    addresses = [arg for arg in argv if arg != "--alive"]
    try:
        targets = [probe_target(arg) for arg in addresses] if addresses else targets_from_env(environ)
    except ValueError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1  # Docker reserves exit status 2
    for target in targets:
        status = health_status(target)
        if status == health_pb2.HealthCheckResponse.SERVING or (alive_only and status is not None):
            return 0
    wanted = "answering" if alive_only else "SERVING"
    print(f"healthcheck: not {wanted} at {', '.join(targets)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
