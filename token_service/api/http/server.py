"""Serving the OAuth HTTP app with uvicorn inside the token service's own event loop.

uvicorn's ``Server.serve()`` takes over SIGTERM/SIGINT and exits the process when it cannot
bind; the token service owns both (one signal handler, one graceful shutdown for gRPC and HTTP).
So we bind the socket ourselves (port 0 works, a bind error is a ``ListenError`` naming the
address and the setting) and drive uvicorn's ``startup`` / ``main_loop`` / ``shutdown`` steps directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket

import uvicorn
from prometheus_client import CollectorRegistry

from native_iam.runtime.listen import bind_tcp
from token_service.api.http.authorize import BrowserEndpoints
from token_service.api.http.backend import CoreBackend
from token_service.api.http.guard import GuardedHttpProtocol, HttpLimits
from token_service.api.http.routes import HttpConfig, create_app
from token_service.core import Core
from token_service.metrics import http_connections_cut_counter
from token_service.settings import HTTP_LISTEN
from token_service.store.clients import client_secret_key

__all__ = ["HttpServer"]

log = logging.getLogger(__name__)


class HttpServer:
    """The OAuth HTTP endpoints of one token-service process: ``await start()``, ``await stop()``."""

    def __init__(
        self,
        core: Core,
        registry: CollectorRegistry,
        *,
        client_secret_key: bytes | None,
        refresh_grace_s: float,
    ) -> None:
        self.core = core
        self.registry = registry
        self.configured_secret_key = client_secret_key
        self.refresh_grace_s = refresh_grace_s
        self.port = 0
        self.clients = core.clients  # one cache: gRPC refreshes look clients up there too
        self.client_secret_key = b""
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings = self.core.settings
        if self.configured_secret_key is None or self.configured_secret_key == self.core.client_secret_key:
            self.client_secret_key = self.core.client_secret_key  # loaded by Core.start
        else:
            self.client_secret_key = await client_secret_key(self.core.store, self.configured_secret_key)
        app = create_app(
            HttpConfig(
                issuer=settings.issuer,
                signing_alg=settings.signing_alg,
                client_secret_key=self.client_secret_key,
                audience=settings.audience,
                trusted_proxies=settings.trusted_proxies,
            ),
            self.clients,
            CoreBackend(self.core, refresh_grace_s=self.refresh_grace_s),
            self.registry,
            self.core.metrics,
            browser=BrowserEndpoints(self.core, issuer=settings.issuer, trusted_proxies=settings.trusted_proxies),
            assertions=self.core.assertions,
        )
        cut = http_connections_cut_counter(self.registry)
        limits = HttpLimits(
            header_timeout_s=settings.http_header_timeout_s,
            body_timeout_s=settings.http_body_timeout_s,
            max_connections=settings.http_max_connections,
            on_cut=lambda reason: cut.labels(reason).inc(),
        )
        config = uvicorn.Config(
            app,
            # uvicorn's httptools protocol plus deadlines for the request head and body and a
            # per-process connection cap (token_service/api/http/guard.py): slow clients cannot hold the port.
            http=functools.partial(GuardedHttpProtocol, limits=limits),  # type: ignore[arg-type]
            timeout_keep_alive=settings.http_keepalive_s,  # type: ignore[arg-type]
            lifespan="off",
            log_config=None,  # the token service configures logging once
            access_log=False,  # an access log line would be one more place a token could leak
            server_header=False,
            # X-Forwarded-For is read by token_service.forwarded, from NATIVE_IAM_TRUSTED_PROXIES
            # only; uvicorn's own handling would believe any local peer (127.0.0.1 by default).
            proxy_headers=False,
            timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_s)),
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        sock = bind_tcp(settings.http_listen, HTTP_LISTEN, reuse_port=settings.workers > 1)
        await server.startup(sockets=[sock])
        self._server, self._socket = server, sock
        self.port = int(sock.getsockname()[1])
        self._task = asyncio.create_task(server.main_loop(), name="http-server")

    @property
    def url(self) -> str:
        host = self.core.settings.http_listen.rpartition(":")[0].strip("[]")
        host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
        return f"http://{host}:{self.port}"

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish within ``grace`` seconds, close."""
        if self._server is None:
            return
        if grace is not None:
            # uvicorn's wait_for(timeout=0) times out even with nothing in flight; 0.1 s is "now".
            self._server.config.timeout_graceful_shutdown = max(0.1, grace)  # type: ignore[assignment]
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._server.shutdown(sockets=[self._socket] if self._socket else None)
        self._server = None
