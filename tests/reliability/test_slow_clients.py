"""Slow HTTP clients cannot hold the token service (finding F9).

Hundreds of connections that send their request one byte a second ("slowloris") against a real
``native-iam token-service`` process: a normal request is still answered at once, the gRPC port
(what every sidecar's revocation feed uses) stays SERVING, and the slow connections are closed
within NATIVE_IAM_HTTP_HEADER_TIMEOUT_S. With a low file-descriptor limit the per-process
connection cap sheds the oldest slow connections instead of letting them take every descriptor.
"""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability._services import TokenService
from tests.sidecar._stack import serving

SLOW_CLIENTS = 300
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
KEEPALIVE_S = 1.0

pytestmark = pytest.mark.timeout(90)


class SlowClients:
    """``count`` connections, each sending one more byte of a never-ending request head per second."""

    def __init__(self, address: str, count: int, head: bytes = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ") -> None:
        host, _, port = address.rpartition(":")
        self.head = head
        self.sockets: list[socket.socket] = []
        self.closed_at: dict[int, float] = {}
        self.sent = 0
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.setblocking(False)
            self.sockets.append(sock)
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, name="slow-clients", daemon=True)
        self._thread.start()

    def _next_byte(self) -> bytes:
        return self.head[self.sent : self.sent + 1] if self.sent < len(self.head) else b"a"

    def _drip(self) -> None:
        while not self._stop.is_set():
            byte = self._next_byte()
            self.sent += 1
            for index, sock in enumerate(self.sockets):
                if index not in self.closed_at and self._closed_by_server(sock, byte):
                    self.closed_at[index] = time.monotonic()
            self._stop.wait(1.0)

    @staticmethod
    def _closed_by_server(sock: socket.socket, byte: bytes) -> bool:
        try:
            while sock.recv(4096, socket.MSG_DONTWAIT):
                pass  # an answer (HTTP 408, HTTP/2 SETTINGS) is read and ignored; EOF ends the loop
            return True
        except BlockingIOError:
            pass
        except OSError:
            return True
        try:
            sock.send(byte)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return False

    def open_count(self) -> int:
        return len(self.sockets) - len(self.closed_at)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def token_service(tmp_path: Path) -> Iterator[TokenService]:
    service = TokenService(
        tmp_path,
        f"sqlite:///{tmp_path / 'slow.db'}",
        env={
            "NATIVE_IAM_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
            "NATIVE_IAM_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
            "NATIVE_IAM_HTTP_KEEPALIVE_S": str(KEEPALIVE_S),
        },
    ).start()
    yield service
    service.stop()


def _served_promptly(service: TokenService, within_s: float = 3.0) -> float:
    """Seconds a fresh client waits for /healthz; fails when it is not answered within ``within_s``."""
    started = time.monotonic()
    response = httpx.get(f"{service.http_url}/healthz", timeout=within_s)
    assert response.status_code == 200
    return time.monotonic() - started


def test_slow_header_clients_are_cut_off_while_others_are_served(token_service: TokenService) -> None:
    """300 connections dripping their headers: others are served meanwhile, gRPC stays SERVING, and
    every slow connection is closed within the header timeout (plus the drip's pace and a loaded machine's slack)."""
    slow = SlowClients(token_service.http_address, SLOW_CLIENTS)
    try:
        time.sleep(1.0)
        assert _served_promptly(token_service) < 3.0
        assert serving(int(token_service.grpc_address.rpartition(":")[2]))
        # Margins for a loaded 2-core machine: the drip notices a closed socket at its next tick.
        deadline = slow.started + HEADER_TIMEOUT_S + 5.0
        while slow.open_count() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert slow.open_count() == 0, f"{slow.open_count()} slow connections still open after the header timeout"
        latest = max(slow.closed_at.values()) - slow.started
        assert latest < HEADER_TIMEOUT_S + 3.5, latest
    finally:
        slow.close()
    assert token_service.process is not None and token_service.process.running()


def test_an_oversized_request_head_is_refused_with_431(token_service: TokenService) -> None:
    """A request head over 64 KiB (llhttp sets no limit; uvicorn kept every header line in memory:
    64 MiB in a test) is answered 431 at once, without waiting for the head deadline."""
    host, _, port = token_service.http_address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        for _ in range(10):  # 80 KiB of header lines
            sock.sendall(b"X-Big: " + b"a" * 8000 + b"\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert elapsed < HEADER_TIMEOUT_S / 2, elapsed
    assert token_service.process is not None and token_service.process.running()


def test_a_grpc_preface_sent_byte_by_byte_is_cut_off(token_service: TokenService) -> None:
    """The gRPC port gives the HTTP/2 preface the same head deadline (grpc's own default: 120 s)."""
    slow = SlowClients(token_service.grpc_address, 20, head=b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    try:
        deadline = slow.started + HEADER_TIMEOUT_S + 3.0
        while slow.open_count() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert slow.open_count() == 0, f"{slow.open_count()} slow gRPC connections still open"
        assert serving(int(token_service.grpc_address.rpartition(":")[2]))
    finally:
        slow.close()


def test_a_body_sent_byte_by_byte_is_cut_off_with_408(token_service: TokenService) -> None:
    """Complete headers promising a body, then one byte a second: 408 and closed within the body timeout."""
    head = (
        b"POST /oauth2/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    host, _, port = token_service.http_address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head)
        started = time.monotonic()
        answer = b""
        sock.settimeout(1.0)
        while time.monotonic() - started < BODY_TIMEOUT_S + 3:
            try:
                sock.send(b"a")
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert elapsed < BODY_TIMEOUT_S + 2, elapsed
    assert "Exception in ASGI application" not in token_service.log()  # a cut-off client is no server error


def test_an_idle_keep_alive_connection_is_closed(token_service: TokenService) -> None:
    """After a response, a connection that sends nothing more is closed after NATIVE_IAM_HTTP_KEEPALIVE_S."""
    host, _, port = token_service.http_address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        response = b""
        while not response.endswith(b'{"status":"ok"}'):
            response += sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert sock.recv(4096) == b""
        assert time.monotonic() - started < KEEPALIVE_S + 1.5


def test_slow_clients_cannot_take_every_file_descriptor(tmp_path: Path) -> None:
    """With RLIMIT_NOFILE 256 and a header timeout far away, 300 slow connections do not stop the
    service: the connection cap (half the descriptor limit) sheds the oldest idle ones, a normal
    request is answered at once and gRPC stays SERVING."""
    service = TokenService(
        tmp_path,
        f"sqlite:///{tmp_path / 'fd.db'}",
        env={"NATIVE_IAM_HTTP_HEADER_TIMEOUT_S": "60"},
    ).start()
    slow = None
    try:
        assert service.process is not None and service.process.pid is not None
        resource.prlimit(service.process.pid, resource.RLIMIT_NOFILE, (256, 256))
        slow = SlowClients(service.http_address, SLOW_CLIENTS)
        time.sleep(1.5)
        for _ in range(3):
            assert _served_promptly(service) < 3.0
        assert serving(int(service.grpc_address.rpartition(":")[2]))
        # Connections the kernel queued while descriptors ran out are accepted (and shed) a
        # second later (asyncio's accept back-off), so the count settles within a few drips.
        deadline = time.monotonic() + 5
        while slow.open_count() > 256 // 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert slow.open_count() <= 256 // 2, slow.open_count()
        assert service.process.running()
    finally:
        if slow is not None:
            slow.close()
        service.stop()
