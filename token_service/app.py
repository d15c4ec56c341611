"""Wiring and signals: build the core, serve gRPC (+ health, reflection) and metrics, stop cleanly.

On SIGTERM: health goes NOT_SERVING (``enter_graceful_shutdown``), in-flight RPCs get
NATIVE_IAM_SHUTDOWN_GRACE_S to finish (``server.stop(grace)``), then the database is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import grpc
from grpc_reflection.v1alpha import reflection

from native_iam.oauth.v1 import feed_pb2, oauth_pb2  # noqa: F401 - registers descriptors for reflection
from native_iam.runtime import health
from native_iam.runtime.listen import bind_grpc, enabled
from native_iam.runtime.telemetry import Telemetry
from token_service.api.grpc import (
    ADMIN_SERVICES,
    FEED_SERVICE,
    OAUTH_SERVICE,
    admin_handlers,
    client_admin_handlers,
    rpc_handlers,
)
from token_service.api.http import HttpServer
from token_service.cache.invalidation import Invalidation
from token_service.core import Core
from token_service.feed import FeedHub
from token_service.metrics import Metrics
from token_service.prune import Pruner
from token_service.settings import GRPC_LISTEN, METRICS_LISTEN, Settings

__all__ = ["TokenServiceApp"]

log = logging.getLogger(__name__)

_GRPC_IDLE_MS = 60_000  # a gRPC connection without any call for this long is closed (GOAWAY)


class TokenServiceApp:
    """One token-service process: ``await start()``, then ``await stop()`` (or ``run_until_signal``)."""

    def __init__(self, settings: Settings, core: Core | None = None) -> None:
        self.settings = settings
        self.core = core or Core.build(settings)
        self.metrics = Metrics()
        self.core.metrics = self.metrics  # the grant layer counts its outcomes there
        self.telemetry = Telemetry(settings.telemetry_endpoint)
        self.server: grpc.aio.Server | None = None
        self.health = health.new_servicer(asynchronous=True)
        self.grpc_port = 0
        self.metrics_port = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.feed: FeedHub | None = None  # the revocation feed hub, set in start()
        self.invalidation: Invalidation | None = None  # Redis pub/sub (SYSTEM_CACHE_URL), set in start()
        if self.core.cache is not None:
            self.core.cache.attach(self.metrics)
        # --- OAuth HTTP endpoints (issue 3): uvicorn on NATIVE_IAM_HTTP_LISTEN, same loop and core.
        self.http = HttpServer(
            self.core,
            self.metrics.registry,
            client_secret_key=settings.client_secret_key.encode("utf-8") if settings.client_secret_key else None,
            refresh_grace_s=settings.refresh_grace_s,
        )

    @property
    def grpc_target(self) -> str:
        host = self.settings.grpc_listen.rpartition(":")[0]
        host = "127.0.0.1" if host in {"0.0.0.0", "[::]", "::"} else host
        return f"{host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return self.http.url

    async def start(self) -> None:
        # grpc's servicer starts with the server ("") SERVING; nothing is served until every listener is up.
        await health.set_status(self.health, ("",), health.NOT_SERVING)
        await self.core.start()
        self.feed = FeedHub(self.core, self.metrics)
        await self.feed.start()
        if self.core.cache is not None:  # SYSTEM_CACHE_URL: revocations void every replica's cache at once
            self.invalidation = Invalidation(self.core.cache, self.core.checks, on_remote=self.feed.wake)
            self.core.store.add_commit_listener(self.invalidation.committed)
            self.invalidation.start()
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 1024 * 1024),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                # Slow clients (token_service/api/http/guard.py does the same for HTTP/1.1): the HTTP/2
                # preface and SETTINGS within the head deadline (grpc's default is 120 s), and a
                # connection with no call for a minute gets a GOAWAY (clients reconnect on their next
                # call; the sidecars' feed stream keeps theirs busy). Without these a connection
                # that sent its preface and then nothing was kept for ever.
                ("grpc.server_handshake_timeout_ms", int(self.settings.http_header_timeout_s * 1000)),
                ("grpc.max_connection_idle_ms", _GRPC_IDLE_MS),
                # Several workers (NATIVE_IAM_WORKERS) share the port; one process must own it alone.
                ("grpc.so_reuseport", 1 if self.settings.workers > 1 else 0),
            ]
        )
        tracer = self.telemetry.tracer
        handlers = rpc_handlers(self.core, self.metrics, self.feed.watch, tracer)
        handlers += admin_handlers(self.core, self.metrics, tracer)
        server.add_generic_rpc_handlers(handlers)
        # OAuth clients admin (issue 3): uses the HTTP server's client store and secret key.
        server.add_generic_rpc_handlers(client_admin_handlers(self.core, self.metrics))
        health.add_to_server(self.health, server)
        admin_services = list(ADMIN_SERVICES)
        service_names = [
            OAUTH_SERVICE,
            FEED_SERVICE,
            *admin_services,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ]
        reflection.enable_server_reflection(service_names, server)
        self.grpc_port = bind_grpc(server, self.settings.grpc_listen, GRPC_LISTEN)
        await server.start()
        self.server = server
        await self.http.start()  # OAuth HTTP endpoints (issue 3)
        if enabled(self.settings.metrics_listen):
            self.metrics_port = self.metrics.serve(self.settings.metrics_listen, METRICS_LISTEN)
        # SERVING last: a probe that sees it may send traffic to any of the listeners above.
        await health.set_status(self.health, ("", OAUTH_SERVICE, FEED_SERVICE, *admin_services), health.SERVING)
        self._tasks.append(asyncio.create_task(self._reload_keys(), name="key-reload"))
        if self.settings.prune_interval_s > 0:
            self._tasks.append(asyncio.create_task(Pruner(self.settings, self.core.store).run(), name="prune"))
        log.info(
            "token service started",
            extra={
                "grpc": self.grpc_target,
                "http": self.http.url,
                "metrics_port": self.metrics_port,
                "db": self.core.store.dialect,
                "cache": self.core.cache.url if self.core.cache is not None else None,  # password masked
            },
        )

    async def _reload_keys(self) -> None:
        while True:
            await asyncio.sleep(self.settings.key_reload_s)
            try:
                await self.core.keys.reload()
            except Exception:
                log.warning("key reload failed", exc_info=True)

    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.shutdown_grace_s if grace is None else grace
        await health.enter_graceful_shutdown(self.health)
        if self.feed is not None:
            await self.feed.stop_streams()  # feed streams never end by themselves
        # gRPC and HTTP (issue 3) drain in parallel, each within the grace period.
        await asyncio.gather(
            self.server.stop(grace) if self.server is not None else asyncio.sleep(0),
            self.http.stop(grace),
        )
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.invalidation is not None:
            self.core.store.remove_commit_listener(self.invalidation.committed)
            await self.invalidation.stop()
        if self.feed is not None:
            await self.feed.stop()
        self.metrics.stop()
        await asyncio.to_thread(self.telemetry.shutdown)  # flushes queued spans
        await self.core.close()
        log.info("token service stopped")

    async def run_until_signal(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()
