"""Slow and idle HTTP clients cannot hold the token service's HTTP port.

uvicorn bounds only the idle time *between* requests (``timeout_keep_alive``). A client that opens
a connection and sends its request head one byte a second ("slowloris") held it, and one file
descriptor, for ever: a few hundred of them used up the process's descriptors, and then neither
the HTTP nor the gRPC port (the sidecars' revocation feed) accepted anything. This protocol, a
subclass of uvicorn's httptools protocol, adds what uvicorn lacks:

- a deadline for the whole request head, from its first byte (NATIVE_IAM_HTTP_HEADER_TIMEOUT_S),
  and a size limit for it (``MAX_HEAD_BYTES``, 431): llhttp has none, and uvicorn kept every
  header line a client sent (64 MiB in a test) in memory;
- a deadline for the whole request body, from the end of the head (NATIVE_IAM_HTTP_BODY_TIMEOUT_S);
- a cap on the connections of one process (NATIVE_IAM_HTTP_MAX_CONNECTIONS, and never more than
  half the open-file limit, so the gRPC port and the database keep descriptors): a connection
  over the cap closes the oldest connection that is not in a request (idle or still sending its
  head) rather than being refused, so an attacker's held connections make way for new clients.

A deadline that passes answers 408 (RFC 9110 §15.5.9) when no response has started, then closes.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["GuardedHttpProtocol", "HttpLimits", "connection_cap"]

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 16\r\n"
    b"connection: close\r\n\r\nrequest timeout\n"
)
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 24\r\nconnection: close\r\n\r\nrequest head too large\r\n"
)
#: Largest request head (request line and headers) accepted; an OAuth request needs a few KiB.
MAX_HEAD_BYTES = 64 * 1024
_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\n"
    b"connection: close\r\n\r\ntoo many connections"
)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int  # as configured; :func:`connection_cap` applies the descriptor limit
    #: called with "header_timeout", "header_too_large", "body_timeout" or "capacity" per connection cut off
    on_cut: Callable[[str], None] = lambda _reason: None


def connection_cap(configured: int) -> int:
    """``configured``, but at most half the soft RLIMIT_NOFILE: the other half stays for the gRPC
    port, the database and files, so HTTP clients alone can never exhaust the descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft // 2))


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head and body deadlines and the per-process cap."""

    def __init__(self, *args: Any, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.opened_at = 0.0
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes: int | None = None  # bytes of the request head read so far; None outside a head

    # --- connection life -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.opened_at = self.loop.time()
        self._arm(self.limits.header_timeout_s, "header_timeout")
        cap = connection_cap(self.limits.max_connections)  # a getrlimit call: follows a limit changed at run time
        # The cheap count first; connections already closing do not count against the cap.
        if len(self.connections) > cap and sum(not c.transport.is_closing() for c in self.connections) > cap:
            self._shed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and not self.in_request:
            # The first bytes of the next request on a kept-alive connection: its head is timed
            # from here (uvicorn's keep-alive timer, which bounded the silence before, stops now).
            self._arm(self.limits.header_timeout_s, "header_timeout")
        super().data_received(data)
        if self._head_bytes is not None and not self.transport.is_closing():
            # Still inside a head after parsing this chunk (a chunk that completes it is not counted).
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._disarm()
                self._cut("header_too_large", _HEAD_TOO_LARGE)

    @property
    def in_request(self) -> bool:
        """A request head has arrived and its response is not complete yet."""
        return self.cycle is not None and not self.cycle.response_complete

    # --- parser callbacks ------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._disarm()
        self._head_bytes = None
        super().on_headers_complete()
        self._arm(self.limits.body_timeout_s, "body_timeout")  # disarmed at once when there is no body

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    # --- deadlines -------------------------------------------------------------------------

    def _arm(self, seconds: float, reason: str) -> None:
        self._disarm()
        if reason == "header_timeout":
            self._head_bytes = 0
        self._deadline = self.loop.call_later(seconds, self._expired, reason)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, reason: str) -> None:
        self._deadline = None
        self._cut(reason, _REQUEST_TIMEOUT)

    def _cut(self, reason: str, answer: bytes) -> None:
        """Close this connection, answering ``answer`` if no response has started on it."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(answer)
        if cycle is not None and not cycle.response_complete:
            # The request's task (waiting for the body) sees a disconnect and writes nothing more.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()
        self.limits.on_cut(reason)

    # --- the per-process cap ---------------------------------------------------------------

    def _shed(self) -> None:
        """Over the cap: close the oldest other connection not in a request; if every other one
        is serving a request, this new connection is the one refused (503)."""
        idle = [
            c
            for c in self.connections
            if c is not self
            and isinstance(c, GuardedHttpProtocol)
            and not c.in_request
            and not c.transport.is_closing()
        ]
        victim = min(idle, key=lambda c: c.opened_at) if idle else self
        victim._cut("capacity", _UNAVAILABLE)
