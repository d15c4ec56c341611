"""token_service/api/http/server.py: uvicorn inside the token service's loop."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from tests.token_service.api.http.conftest import OAuthService
from token_service.api.http.server import HttpServer


async def test_serves_on_an_ephemeral_port(oauth_service: OAuthService) -> None:
    """Port 0 binds a free port and the server answers /healthz there."""
    assert oauth_service.http.port > 0
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{oauth_service.url}/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_bind_error_names_the_variable(oauth_service: OAuthService) -> None:
    """A port already in use fails start() with an OSError naming NATIVE_IAM_HTTP_LISTEN."""
    from dataclasses import replace

    core = oauth_service.core
    busy = replace(core.settings, http_listen=f"127.0.0.1:{oauth_service.http.port}")
    other = HttpServer(core, CollectorRegistry(), client_secret_key=None, refresh_grace_s=5)
    original = core.settings
    core.settings = busy
    try:
        with pytest.raises(OSError, match="NATIVE_IAM_HTTP_LISTEN"):
            await other.start()
    finally:
        core.settings = original


async def test_stop_closes_the_port(oauth_service: OAuthService) -> None:
    """After stop(), new connections are refused."""
    url = oauth_service.url
    await oauth_service.http.stop()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/healthz")


async def test_listening_socket_is_tcp_so_responses_are_not_delayed(oauth_service: OAuthService) -> None:
    """The socket says IPPROTO_TCP, so asyncio sets TCP_NODELAY on each connection: requests on one
    keep-alive connection take far less than the ~40 ms each that Nagle + delayed ACK cost."""
    import socket
    import statistics
    import time

    assert oauth_service.http._socket is not None and oauth_service.http._socket.proto == socket.IPPROTO_TCP
    timings = []
    async with httpx.AsyncClient(base_url=oauth_service.url) as client:
        await client.get("/healthz")
        for _ in range(20):
            started = time.perf_counter()
            await client.get("/healthz")
            timings.append(time.perf_counter() - started)
    # The median ignores scheduling hiccups on a busy machine; the bug makes every request >= 40 ms.
    assert statistics.median(timings) < 0.02, timings
