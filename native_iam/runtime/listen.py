"""Opening the listeners of both roles: one clear error for a port that cannot be used, and a
Prometheus ``/metrics`` server that slow clients cannot hold.

Every listener (gRPC, HTTP, metrics) of the token service and the sidecar opens here, so a busy
port or a bad address is always a :class:`ListenError` saying which address and which setting
(variable and, where there is one, command-line flag); the CLIs print it as one line and exit 1.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

from native_iam.runtime.env import LISTENER_OFF

__all__ = [
    "ListenError",
    "MetricsServer",
    "bind_grpc",
    "bind_tcp",
    "enabled",
    "raise_open_file_limit",
    "serve_metrics",
    "split_address",
]

#: Whole-request deadline and concurrent-connection cap of the metrics server: a scrape is one
#: small GET, so anything slower is a client holding a thread and a file descriptor.
METRICS_REQUEST_TIMEOUT_S = 10.0
METRICS_MAX_CONNECTIONS = 32


class ListenError(OSError):
    """A listener cannot open: names the address and the setting that chose it."""

    def __init__(self, setting: str, address: str, reason: str) -> None:
        self.setting, self.address, self.reason = setting, address, reason
        super().__init__(f"cannot listen on {address} ({setting}): {reason}")


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (what the process may use anyway, as Go's
    runtime does) and return it: many systems start services with a soft limit of 1024, which a
    few hundred clients use up. The HTTP connection cap is half of this (token_service/api/http/guard.py)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):  # e.g. a hard limit above the kernel's nr_open
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def enabled(address: str) -> bool:
    """Whether an optional listener is on: blank, ``off`` and ``none`` turn it off (both roles)."""
    return address.strip().lower() not in LISTENER_OFF


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` → (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def bind_tcp(address: str, setting: str, *, reuse_port: bool = False) -> socket.socket:
    """A bound, non-blocking TCP socket (not yet listening) for ``address``."""
    host, port = split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every keep-alive response waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # several workers bind the port, the kernel spreads connections
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(setting, address, _reason(exc)) from exc
    sock.setblocking(False)
    return sock


def bind_grpc(server: Any, address: str, setting: str) -> int:
    """``server.add_insecure_port(address)`` (sync or aio server); the bound port."""
    try:
        port = int(server.add_insecure_port(address))
    except RuntimeError as exc:  # grpcio >= 1.60 raises where older versions returned 0
        raise ListenError(setting, address, "address already in use or not available") from exc
    if port == 0:
        raise ListenError(setting, address, "address already in use or not available")
    return port


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


# --- /metrics -----------------------------------------------------------------------------


class _Handler(WSGIRequestHandler):
    """A scrape: one GET with a deadline for the whole exchange, and no access log."""

    def setup(self) -> None:
        super().setup()
        # A per-read timeout alone lets a client that drips a byte per read stay for ever: the
        # deadline shuts the socket down, which ends the blocked read in this handler's thread.
        self.connection.settimeout(METRICS_REQUEST_TIMEOUT_S)
        self._deadline = threading.Timer(METRICS_REQUEST_TIMEOUT_S, self._cut)
        self._deadline.daemon = True
        self._deadline.start()

    def _cut(self) -> None:
        with contextlib.suppress(OSError):  # already closed
            self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        self._deadline.cancel()
        with contextlib.suppress(OSError):  # the client went away or was cut off
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class MetricsServer(ThreadingMixIn, WSGIServer):
    """prometheus_client's threading WSGI server, with the deadline and a connection cap."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._slots = threading.BoundedSemaphore(METRICS_MAX_CONNECTIONS)
        super().__init__((host, port), _Handler)
        self.set_app(make_wsgi_app(registry))

    def process_request(self, request: Any, client_address: Any) -> None:
        # Over the cap the new connection is closed at once: held ones end within the deadline.
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that breaks off its scrape is not a server error worth a traceback

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def serve_metrics(address: str, setting: str, registry: CollectorRegistry = REGISTRY) -> MetricsServer:
    """Serve ``registry`` at ``/metrics`` on ``address`` (port 0 = any) in a daemon thread."""
    host, port = split_address(address)
    try:
        server = MetricsServer(host, port, registry)
    except OSError as exc:
        raise ListenError(setting, address, _reason(exc)) from exc
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
