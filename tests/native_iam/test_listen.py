"""native_iam/runtime/listen.py: one error naming address and setting; a /metrics server slow clients cannot hold."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from prometheus_client import CollectorRegistry, Counter

from native_iam.runtime import listen


def test_busy_tcp_and_grpc_ports_name_the_address_and_setting() -> None:
    """bind_tcp and bind_grpc on a taken port raise ListenError naming the address and the setting."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(listen.ListenError, match=f"cannot listen on {address} \\(SOME_LISTEN or --some\\)"):
            listen.bind_tcp(address, "SOME_LISTEN or --some")
        server = grpc.server(thread_pool=None)  # type: ignore[arg-type]
        with pytest.raises(listen.ListenError, match=f"{address} \\(OTHER_LISTEN\\)"):
            listen.bind_grpc(server, address, "OTHER_LISTEN")


def test_metrics_server_cuts_off_a_dripping_client_and_keeps_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client sending its request a byte at a time is disconnected at the deadline; scrapes still work."""
    monkeypatch.setattr(listen, "METRICS_REQUEST_TIMEOUT_S", 1.0)
    registry = CollectorRegistry()
    Counter("listen_test_total", "test", registry=registry).inc()
    server = listen.serve_metrics("127.0.0.1:0", "TEST_METRICS_LISTEN", registry)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as slow:
            started = time.monotonic()
            closed = False
            for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 10:
                try:
                    slow.send(bytes([byte]))
                except OSError:
                    closed = True
                    break
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=2) as response:
                    assert b"listen_test_total 1.0" in response.read()
                time.sleep(0.3)
            if not closed:
                slow.settimeout(2)
                closed = slow.recv(1) == b""
        assert closed and time.monotonic() - started < 4
    finally:
        server.stop()


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    """A process started with soft 256 / hard 4096 descriptors may then use 4096 (both CLIs call it)."""
    code = "from native_iam.runtime.listen import raise_open_file_limit; print(raise_open_file_limit())"
    result = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096)),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert int(result.stdout) == 4096
