"""grpc.health.v1 for both roles: the servicer, its status flips, and asking a server whether it serves.

The token service serves health on its gRPC port, the sidecar on its ext_authz port (what Envoy
and the kubelet ask). A sync gRPC server needs the sync servicer (whose ``set`` is thread-safe),
a ``grpc.aio`` server the aio one; the helpers here accept either, so the callers never branch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

__all__ = [
    "NOT_SERVING",
    "SERVICE_NAME",
    "SERVING",
    "add_to_server",
    "enter_graceful_shutdown",
    "new_servicer",
    "serving",
    "set_status",
    "wait_serving",
]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: The health service's own name (for reflection).
SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

#: Either servicer: ``health.HealthServicer`` (sync server) or ``health.aio.HealthServicer``.
Servicer = Any


def new_servicer(*, asynchronous: bool) -> Servicer:
    return health.aio.HealthServicer() if asynchronous else health.HealthServicer()


def add_to_server(servicer: Servicer, server: Any) -> None:
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)


async def set_status(servicer: Servicer, services: Iterable[str], status: int) -> None:
    """Set ``status`` for each of ``services`` ("" is the server as a whole)."""
    for service in services:
        await _maybe_await(servicer.set(service, status))


async def enter_graceful_shutdown(servicer: Servicer) -> None:
    """Every service NOT_SERVING, and no later ``set`` changes that: the first step of a stop."""
    await _maybe_await(servicer.enter_graceful_shutdown())


async def _maybe_await(result: object) -> None:
    # The aio servicer's methods are coroutines, the sync servicer's are not.
    if asyncio.iscoroutine(result):
        await result


def serving(target: str, timeout_s: float = 1.0) -> bool:
    """Whether the gRPC server at ``target`` answers health Check with SERVING (one call)."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError:
            return False
    return reply.status == SERVING


def wait_serving(target: str, timeout_s: float, still_running: Callable[[], bool] = lambda: True) -> bool:
    """Poll :func:`serving` until it is true (True), ``timeout_s`` passes or ``still_running``
    turns false (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and still_running():
        if serving(target):
            return True
        time.sleep(0.1)
    return False
