"""The ext_authz HTTP protocol (Envoy's ``http_service``, nginx ``auth_request``): request → decision → response.

Envoy sends the client request's method and path (after ``path_prefix``, which must stay empty:
the path is what the route was chosen from), its ``Host`` and the headers listed in
``allowed_headers``, with no body. The answer: **200** to allow, its identity headers copied onto
the upstream request by ``allowed_upstream_headers`` (overwriting what the client sent) and the
others listed in ``x-envoy-auth-headers-to-remove``; or the deny's status, ``WWW-Authenticate``,
``Cache-Control`` and JSON body, which Envoy returns to the client. The values are the decision
core's (sidecar/verdict.py), byte for byte those of the gRPC transport.

**Route requirements** travel in one header, :data:`REQUIREMENT_HEADER`, whose value is the route
metadata schema as JSON (sidecar/requirements.py). Envoy sets it from configuration: the filter's
``http_service.authorization_request.headers_to_add`` and each route's
``ExtAuthzPerRoute.check_settings.http_service`` override. ``headers_to_add`` *replaces* a value
the client sent, and a client's header only reaches the sidecar when ``allowed_headers`` lists
it, which it must never do for this one (tests/deploy/test_envoy_config.py checks shipped configs).

**Server**: asyncio with httptools' parser (a C HTTP/1.1 parser; no hand-written parsing),
chosen by measurement (docs/benchmarks.md): the cheapest per check of the candidates measured.
Bounded for a loopback peer that misbehaves: header bytes (:data:`MAX_HEADER_BYTES` beyond the
token limit), a whole request within :data:`REQUEST_TIMEOUT_S`, keep-alive connections idle at
most :data:`IDLE_TIMEOUT_S`, at most :data:`MAX_CONNECTIONS` connections, and reading paused
while a peer does not read its answers. A request that cannot be parsed is a 400 deny (reason
``malformed``) and the connection is closed; nothing but a decided verdict is ever a 200.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

import httptools
from opentelemetry import trace

from native_iam.runtime import telemetry

from .authenticate import NEED_REFETCH
from .authorization import Authorizer, Request
from .decision import Deny, Reason
from .requirements import RequirementError
from .verdict import Allow, Denial, Verdict

log = logging.getLogger("sidecar.ext_authz_http")

#: The header carrying a route's requirement (JSON, route metadata schema), set by the proxy.
REQUIREMENT_HEADER = "x-native-iam-requirement"
_REQUIREMENT = REQUIREMENT_HEADER.encode()
_TRACE_HEADERS = frozenset(name.encode() for name in telemetry.TRACE_HEADERS)
#: Header bytes (request line and headers) allowed beyond the token limit (NATIVE_IAM_MAX_TOKEN_BYTES).
MAX_HEADER_BYTES = 16 * 1024
#: Envoy sends no body unless ``with_request_body`` is set; a body is read and ignored up to this.
MAX_BODY_BYTES = 64 * 1024
#: From a request's first byte to its last: a slow (or stuck) peer is cut off after this.
REQUEST_TIMEOUT_S = 10.0
#: A keep-alive connection with no request for this long is closed (longer than the example
#: configs' ``idle_timeout`` for the sidecar cluster, so Envoy closes first and never races us).
IDLE_TIMEOUT_S = 300.0
#: Concurrent connections; more are closed at once (Envoy opens a few per worker thread).
MAX_CONNECTIONS = 512
_SWEEP_S = 1.0
_WRITE_HIGH_WATER = 256 * 1024

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error"}
_REASONS[503] = "Service Unavailable"


def _line(name: str, value: str) -> bytes:
    data = f"{name}: {value}\r\n".encode()
    if data.count(b"\r") != 1 or data.count(b"\n") != 1:  # never a header injection
        raise ValueError(f"header {name} has a line break")
    return data


def encode(v: Verdict) -> bytes:
    """The HTTP/1.1 response of a verdict (stored on it: each verdict is encoded once)."""
    cached = v.http
    if cached is not None:
        return cached
    if v.__class__ is Allow:
        a: Allow = v  # type: ignore[assignment]
        head = b"HTTP/1.1 200 OK\r\n" + b"".join(_line(name, value) for name, value in a.headers)
        if a.remove:
            head += _line("x-envoy-auth-headers-to-remove", ", ".join(a.remove))
        encoded = head + b"content-length: 0\r\n\r\n"
    else:
        d: Denial = v  # type: ignore[assignment]
        body = d.body.encode()
        head = f"HTTP/1.1 {d.status} {_REASONS.get(d.status, 'Error')}\r\n".encode()
        head += b"".join(_line(name, value) for name, value in d.headers)
        encoded = head + f"content-length: {len(body)}\r\n\r\n".encode() + body
    v.http = encoded
    return encoded


class _TooLarge(Exception):
    pass


class _Connection(asyncio.Protocol):
    """One keep-alive connection; requests are answered in order (pipelining included)."""

    def __init__(self, server: HttpAuthz) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: Any = None
        self._queue: collections.deque[bytes | asyncio.Future[bytes]] | None = None
        self._closing = False
        self.started = 0.0  # monotonic start of the request being read; 0: between requests
        self.idle_since = time.monotonic()
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._budget = self._server.max_header_bytes
        self._body = 0
        self._credential: str | None = None
        self._requirement: str | None = None
        self._host = ""
        self._trace: dict[str, str] | None = None  # traceparent/tracestate, kept only when tracing

    # ---- asyncio.Protocol ----

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        if len(self._server.connections) >= MAX_CONNECTIONS:
            self._server.refused()
            transport.close()
            return
        self._server.connections.add(self)
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._closing = True

    def pause_writing(self) -> None:
        self._transport.pause_reading()  # a peer not reading its answers gets no more read

    def resume_writing(self) -> None:
        if not self._closing:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except _TooLarge:
            self._refuse("the request's headers or body are too large")
        except httptools.HttpParserUpgrade:
            # The request was decided like any other (its Upgrade ignored); nothing may follow it.
            self.close()
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _TooLarge):
                self._refuse("the request's headers or body are too large")
            else:
                log.exception("http request handling failed")
                self._answer(encode(self._server.authorizer.internal()))
                self.close()
        except httptools.HttpParserError:
            self._refuse("the request is not valid HTTP/1.1")

    def timed_out(self) -> None:
        self._refuse("the request was not received in time")

    def close(self) -> None:
        self._closing = True
        if self._queue is None and self._transport is not None:
            self._transport.close()  # after the buffered answers are written

    def _refuse(self, why: str) -> None:
        if self._closing:
            return
        verdict = self._server.authorizer.deny(Deny(Reason.MALFORMED, why, bad_request=True))
        self._answer(encode(verdict))
        self.close()

    # ---- httptools callbacks ----

    def on_message_begin(self) -> None:
        self.started = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self._budget -= len(url)
        if self._budget < 0:
            raise _TooLarge
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._budget -= len(name) + len(value) + 4
        if self._budget < 0:
            raise _TooLarge
        name = name.lower()
        if name == self._server.token_header:
            text = value.decode("utf-8", "replace")
            # Repeats joined with "," as Envoy joins them: a duplicate token header stays malformed.
            self._credential = text if self._credential is None else f"{self._credential},{text}"
        elif name == b"host":
            self._host = value.decode("utf-8", "replace")
        elif name == _REQUIREMENT:
            text = value.decode("utf-8", "replace")
            self._requirement = text if self._requirement is None else f"{self._requirement},{text}"
        elif name in _TRACE_HEADERS and self._server.spans is not None:
            if self._trace is None:
                self._trace = {}
            self._trace[name.decode("ascii")] = value.decode("ascii", "replace")

    def on_body(self, body: bytes) -> None:
        self._body += len(body)
        if self._body > MAX_BODY_BYTES:
            raise _TooLarge

    def on_message_complete(self) -> None:
        method = self._parser.get_method().decode("ascii", "replace")
        keep_alive = self._parser.should_keep_alive()
        server = self._server
        started = time.perf_counter()
        span: trace.Span | None = None
        path = ""
        answer: bytes | None = None
        try:
            path = self._url.decode("utf-8", "replace")
            try:
                # The header's requirement and the route table's rule for this host/method/path.
                requirement: Any = server.resolve(self._requirement, self._host, method, path)
            except RequirementError as exc:
                requirement = exc
            r = Request(method, self._host, path, self._credential, requirement)
            span = None if server.spans is None else server.spans.start(self._trace or {})
            if span is None:
                verdict: Any = server.decide(r)
            else:
                with trace.use_span(span, end_on_exit=False):
                    verdict = server.decide(r)
            if verdict is NEED_REFETCH:  # answered (and its span ended) once the keys are fetched
                self._answer(asyncio.ensure_future(self._after_refetch(r, method, span)))
            else:
                answer = self._bytes(encode(verdict), method)
        except Exception:
            verdict = server.authorizer.internal()
            answer = self._bytes(encode(verdict), method)
        if answer is not None:
            if span is not None:  # also for the internal deny: no span is left open
                server.spans.end(span, method, path, verdict)  # type: ignore[union-attr]
            self._answer(answer)
        server.seconds.observe(time.perf_counter() - started)
        self._reset()
        self.started = 0.0
        self.idle_since = time.monotonic()
        if not keep_alive:
            self.close()

    # ---- answering in order ----

    @staticmethod
    def _bytes(response: bytes, method: str) -> bytes:
        # A HEAD answer has the headers (content-length included) but no body.
        return response[: response.index(b"\r\n\r\n") + 4] if method == "HEAD" else response

    async def _after_refetch(self, r: Request, method: str, span: trace.Span | None) -> bytes:
        server = self._server
        try:
            await server.authorizer.authenticator.wait_for_keys_async()
            verdict: Any = server.decide(r, True)
        except Exception:
            verdict = server.authorizer.internal()
        if span is not None:
            server.spans.end(span, method, r.path, verdict)  # type: ignore[union-attr]
        return self._bytes(encode(verdict), method)

    def _answer(self, item: bytes | asyncio.Future[bytes]) -> None:
        if self._queue is None and item.__class__ is bytes:
            self._transport.write(item)
            return
        if self._queue is None:
            self._queue = collections.deque()
        self._queue.append(item)
        self._flush()

    def _flush(self, _: object = None) -> None:
        queue = self._queue
        while queue:
            head = queue[0]
            if head.__class__ is not bytes:
                if not head.done():  # type: ignore[union-attr]
                    head.add_done_callback(self._flush)  # type: ignore[union-attr]
                    return
                head = head.result()  # type: ignore[union-attr]
            queue.popleft()
            if not self._transport.is_closing():
                self._transport.write(head)
        self._queue = None
        if self._closing and self._transport is not None:
            self._transport.close()


class HttpAuthz:
    """The HTTP ext_authz server of one sidecar worker."""

    def __init__(self, authorizer: Authorizer, *, max_token_bytes: int) -> None:
        self.authorizer = authorizer
        self.decide = authorizer.decide
        self.resolve = authorizer.resolver.resolve_json
        self.seconds = authorizer.metrics.check_seconds
        self.spans = authorizer.spans
        self.token_header = authorizer.token_header.encode()
        self.max_header_bytes = max_token_bytes + MAX_HEADER_BYTES
        self.connections: set[_Connection] = set()
        self._refused_logged = 0.0
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def refused(self) -> None:
        """A connection over :data:`MAX_CONNECTIONS` was closed: say so, at most once a second."""
        now = time.monotonic()
        if now - self._refused_logged >= 1.0:
            self._refused_logged = now
            log.warning("connections refused: too many connections", extra={"limit": MAX_CONNECTIONS})

    async def start(self, sock: Any) -> int:
        """Serve on ``sock`` (bound, from native_iam.runtime.listen.bind_tcp); the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), sock=sock, backlog=1024)
        self._sweeper = asyncio.create_task(self._sweep(), name="authz-http-sweep")
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
            for connection in list(self.connections):
                connection.close()
            await self._server.wait_closed()

    async def _sweep(self) -> None:
        """Once a second: cut requests taking too long and keep-alive connections idle too long."""
        while True:
            await asyncio.sleep(_SWEEP_S)
            now = time.monotonic()
            for connection in list(self.connections):
                if connection.started and now - connection.started > REQUEST_TIMEOUT_S:
                    connection.timed_out()
                elif not connection.started and now - connection.idle_since > IDLE_TIMEOUT_S:
                    connection.close()


__all__ = ["IDLE_TIMEOUT_S", "MAX_CONNECTIONS", "REQUEST_TIMEOUT_S", "REQUIREMENT_HEADER", "HttpAuthz", "encode"]
