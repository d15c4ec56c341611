"""A stand-in for the token service's HTTP token endpoint (a real HTTP server on 127.0.0.1).

It records every form it receives and answers with :attr:`TokenEndpoint.answer` (default: a
token for the ``resource`` asked, or ``invalid_client`` when the client assertion is not the
expected one). Used by the workload-token tests (sidecar/workload_tokens.py) and by the feed tests
that give a sidecar its feed credential through it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

from ._stack import echo_upstream

#: ``(HTTP status, body)``; a dict body is sent as JSON, bytes as they are.
Answer = tuple[int, dict[str, Any] | bytes]


class TokenEndpoint:
    def __init__(self, *, assertion: str | None = None, expires_in: float = 300, delay_s: float = 0.0) -> None:
        self.assertion = assertion
        self.expires_in = expires_in
        self.delay_s = delay_s
        self.forms: list[dict[str, str]] = []
        self.issued: list[str] = []
        self.answer: Callable[[dict[str, str]], Answer] = self.issue
        self.url = ""
        self._lock = threading.Lock()
        self._serial = itertools.count(1)

    def issue(self, form: dict[str, str]) -> Answer:
        """The default answer: RFC 6749 §5.1 for a good assertion, §5.2 invalid_client otherwise."""
        if self.assertion is not None and form.get("client_assertion") != self.assertion:
            return 401, {"error": "invalid_client", "error_description": "the client assertion is not accepted"}
        token = f"at-{next(self._serial)}-{form.get('resource', '')}-{'+'.join(form.get('scope', '').split())}"
        with self._lock:
            self.issued.append(token)
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        if "scope" in form:
            answer["scope"] = form["scope"]
        return 200, answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode("ascii")))
                with endpoint._lock:
                    endpoint.forms.append(form)
                if endpoint.delay_s:
                    time.sleep(endpoint.delay_s)
                status, body = endpoint.answer(form)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("location", "http://127.0.0.1:1/elsewhere")
                self.send_header("content-type", "application/json")
                self.send_header("cache-control", "no-store")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    @contextlib.contextmanager
    def running(self) -> Iterator[TokenEndpoint]:
        with echo_upstream(self._handler()) as port:
            self.url = f"http://127.0.0.1:{port}/oauth2/token"
            yield self
