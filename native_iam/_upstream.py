"""A tiny sample upstream for the demo and the end-to-end tests: it answers every request with a
JSON echo of the method, the path and the identity headers the sidecar added, so that a person
(or a test) can see what reached the workload."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Prefix of the headers the sidecar adds on an allowed request (see docs/sidecar.md, "Answers").
IDENTITY_HEADER_PREFIX = "x-native-iam-"


class _EchoHandler(BaseHTTPRequestHandler):
    server_version = "native-iam-sample-upstream"

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "identity_headers": {
                    name.lower(): value
                    for name, value in self.headers.items()
                    if name.lower().startswith(IDENTITY_HEADER_PREFIX)
                },
                "authorization_header_present": "authorization" in {n.lower() for n in self.headers},
            },
            indent=2,
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body) + 1))
        self.end_headers()
        self.wfile.write(body + b"\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:
        # Quiet: the demo prints its own summary; Envoy's access log shows each request.
        return


def serve_in_thread(host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Start the echo upstream on a daemon thread; call ``shutdown()`` on the result to stop it."""
    server = ThreadingHTTPServer((host, port), _EchoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="sample-upstream", daemon=True).start()
    return server
