"""Wiring of one sidecar worker: caches, feed, servers, health, housekeeping. No decisions here.

The ext_authz gRPC server is the grpcio sync server with a small thread pool (or ``grpc.aio``,
NATIVE_IAM_AUTHZ_SERVER), as measured by ``bench/sidecar_servers.py``: with 2-3 threads it used
less CPU per Check than grpc.aio. The optional ext_authz HTTP server (NATIVE_IAM_AUTHZ_HTTP_LISTEN)
runs on this worker's event loop and shares its decision core and caches. The OAuth facade is
always ``grpc.aio``. The revocation feed and JWKS fetches run on their own threads with a
blocking gRPC channel, so the request path only ever decides requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from concurrent import futures

import grpc
from grpc_reflection.v1alpha import reflection

from native_iam.oauth.v1 import oauth_pb2, workload_pb2
from native_iam.runtime import health
from native_iam.runtime.listen import bind_grpc, bind_tcp, enabled
from native_iam.runtime.telemetry import Telemetry

from . import ext_authz_grpc, oauth_facade, workload_tokens
from .authorization import Authorizer
from .ext_authz_http import HttpAuthz
from .keys import KeyStore, grpc_fetcher, http_fetcher
from .metrics import Metrics
from .oauth_facade import OAuthFacade
from .revocations import FeedClient, RevocationCache
from .route_table_file import RouteTableFile
from .settings import Settings
from .workload_tokens import FeedCredential, WorkloadTokens, WorkloadTokensServicer

log = logging.getLogger("sidecar.server")

_HOUSEKEEPING_S = 0.25
_PRUNE_EVERY_S = 30.0
_CHANNEL_OPTIONS = [
    # Detect a dead token service within seconds even when no packet says so.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect attempts are paced by the feed client, not stretched by the channel.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]
_HEALTH_SERVICES = ("", ext_authz_grpc.SERVICE, "native_iam.oauth.v1.OAuth")


class Sidecar:
    """One worker: owns its caches and feed subscription, serves ext_authz and the OAuth facade."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None, *, reuse_port: bool = False) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._reuse_port = reuse_port
        self._channel = grpc.insecure_channel(settings.token_url, options=_CHANNEL_OPTIONS)
        fetch = http_fetcher(settings.jwks_url) if settings.jwks_url else grpc_fetcher(self._channel)
        self.keys = KeyStore(
            fetch,
            max_age_s=settings.jwks_max_staleness_s,
            min_refetch_s=settings.jwks_min_refetch_s,
            on_fetch=self.metrics.fetched,
        )
        self.revocations = RevocationCache(max_staleness_s=settings.feed_max_staleness_s, on_key_retired=self.keys.ban)
        self.workload_tokens = WorkloadTokens(
            settings, self.metrics, revoked=workload_tokens.revoked_in(self.revocations)
        )
        # The static feed token when one is set; else the pod's identity, when it has one.
        self.feed_credential: str | FeedCredential = settings.feed_token
        if (
            not settings.feed_token
            and settings.token_endpoint
            and workload_tokens.readable(settings.service_account_token_file)
        ):
            self.feed_credential = FeedCredential(
                self.workload_tokens, settings.token_service_audience, timeout_s=settings.forward_timeout_s
            )
        self.feed = FeedClient(
            self._channel,
            self.revocations,
            subscriber=settings.subscriber,
            credential=self.feed_credential,
            on_connected=lambda up: self.metrics.feed_connected.set(1 if up else 0),
        )
        # Raises RouteTableError when the file is invalid: the CLI checked it already, so only a
        # file broken in between (or an embedding caller) meets it.
        self.routes = RouteTableFile(settings.route_table_file, self.metrics) if settings.route_table_file else None
        self.telemetry = Telemetry(
            settings.telemetry_endpoint or None,
            "native-iam-sidecar",
            scope="sidecar",
            sample_ratio=settings.trace_sample_ratio,
        )
        self._tracer = self.telemetry.tracer if self.telemetry.enabled else None
        self.authorizer = Authorizer(
            settings,
            self.keys,
            self.revocations,
            self.metrics,
            tracer=self._tracer,
            sample_ratio=settings.trace_sample_ratio,
            routes=self.routes,
        )
        self.kind = settings.authz_server
        # Health lives on the ext_authz port (what Envoy and the kubelet ask); a sync server
        # needs the sync servicer, whose set() is thread-safe.
        self.health = health.new_servicer(asynchronous=self.kind == "aio")
        self.authz_port = 0
        self.authz_http_port = 0
        self.oauth_port = 0
        self._http_authz: HttpAuthz | None = None
        self._servers: list[grpc.aio.Server] = []
        self._sync_server: grpc.Server | None = None
        self._aio_channels: list[grpc.aio.Channel] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = False

    @property
    def ready(self) -> bool:
        return self.keys.loaded and self.keys.usable() is not None and self.revocations.synced

    def _options(self) -> list[tuple[str, int]]:
        return [("grpc.so_reuseport", 1 if self._reuse_port else 0)]

    def _server(self) -> grpc.aio.Server:
        return grpc.aio.server(options=self._options())

    async def _set_health(self, status: int) -> None:
        await health.set_status(self.health, _HEALTH_SERVICES, status)

    async def start(self) -> None:
        s = self.settings
        await self._set_health(health.NOT_SERVING)
        if isinstance(self.feed_credential, FeedCredential):
            log.info("the revocation feed uses a workload token (NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE)")
        elif not s.feed_token:
            log.error(
                "neither NATIVE_IAM_FEED_TOKEN nor NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE is usable:"
                " the token service refuses the revocation feed"
            )

        handler = ext_authz_grpc.handler(self.authorizer, asynchronous=self.kind == "aio")
        if self.kind == "sync":
            # Few threads: decisions hold the GIL, more threads only add contention.
            pool = futures.ThreadPoolExecutor(max_workers=s.authz_threads, thread_name_prefix="authz")
            sync = grpc.server(pool, options=self._options())
            sync.add_generic_rpc_handlers((handler,))
            health.add_to_server(self.health, sync)
            self.authz_port = bind_grpc(sync, s.authz_listen, "NATIVE_IAM_AUTHZ_LISTEN")
            self._sync_server = sync
        else:
            authz = self._server()
            authz.add_generic_rpc_handlers((handler,))
            health.add_to_server(self.health, authz)
            self.authz_port = bind_grpc(authz, s.authz_listen, "NATIVE_IAM_AUTHZ_LISTEN")
            self._servers.append(authz)

        if enabled(s.authz_http_listen):
            http_authz = HttpAuthz(self.authorizer, max_token_bytes=s.max_token_bytes)
            sock = bind_tcp(s.authz_http_listen, "NATIVE_IAM_AUTHZ_HTTP_LISTEN", reuse_port=self._reuse_port)
            self.authz_http_port = await http_authz.start(sock)
            self._http_authz = http_authz

        if enabled(s.oauth_listen):
            token_channel = grpc.aio.insecure_channel(s.token_url, options=_CHANNEL_OPTIONS)
            self._aio_channels.append(token_channel)
            password_channel = None
            if s.password_url and s.password_url != s.token_url:
                password_channel = grpc.aio.insecure_channel(s.password_url, options=_CHANNEL_OPTIONS)
                self._aio_channels.append(password_channel)
            facade = OAuthFacade(
                s,
                self.keys,
                self.revocations,
                token_channel=token_channel,
                password_channel=password_channel,
                tracer=self._tracer,
            )
            oauth = self._server()
            oauth.add_generic_rpc_handlers(
                (
                    oauth_facade.handler(facade),
                    oauth_facade.parsed_handler(
                        workload_tokens.SERVICE, workload_tokens.methods(WorkloadTokensServicer(self.workload_tokens))
                    ),
                )
            )
            reflection.enable_server_reflection(
                (
                    oauth_pb2.DESCRIPTOR.services_by_name["OAuth"].full_name,
                    workload_pb2.DESCRIPTOR.services_by_name["WorkloadTokens"].full_name,
                    reflection.SERVICE_NAME,
                ),
                oauth,
            )
            self.oauth_port = bind_grpc(oauth, s.oauth_listen, "NATIVE_IAM_OAUTH_LISTEN")
            self._servers.append(oauth)

        if self._sync_server is not None:
            self._sync_server.start()
        for server in self._servers:
            await server.start()
        self.feed.start()
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        log.info(
            "sidecar started",
            extra={
                "authz_port": self.authz_port,
                "authz_http_port": self.authz_http_port,
                "oauth_port": self.oauth_port,
                "token_url": s.token_url,
                "server": self.kind,
            },
        )

    async def stop(self, grace: float = 2.0) -> None:
        await health.enter_graceful_shutdown(self.health)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(server.stop(grace) for server in self._servers))
        if self._http_authz is not None:
            await self._http_authz.stop()
        if self._sync_server is not None:
            stopped = self._sync_server.stop(grace)
            await asyncio.to_thread(stopped.wait, grace + 5)
        await asyncio.to_thread(self.feed.stop)
        self.keys.close()
        self.workload_tokens.close()
        for channel in self._aio_channels:
            await channel.close()
        self._channel.close()
        await asyncio.to_thread(self.telemetry.shutdown)  # flushes queued spans

    async def _housekeeping(self) -> None:
        """Key refresh, readiness, gauges, pruning and the feed watchdog, a few times a second."""
        loop = asyncio.get_running_loop()
        next_refresh = 0.0
        backoff = 0.5
        last_prune = time.monotonic()
        refreshing: asyncio.Future[bool] | None = None
        while True:
            now = time.monotonic()
            if refreshing is None and now >= next_refresh:
                refreshing = loop.run_in_executor(None, self.keys.refresh)
            if refreshing is not None and refreshing.done():
                try:
                    ok = refreshing.result()
                except Exception:
                    log.exception("jwks refresh failed")
                    ok = False
                refreshing = None
                if ok:
                    backoff = 0.5
                    next_refresh = time.monotonic() + self.keys.refresh_after_s
                else:
                    next_refresh = time.monotonic() + backoff
                    backoff = min(backoff * 2, 30.0)
            try:
                await self._tick(now - last_prune > _PRUNE_EVERY_S)
            except Exception:
                # Housekeeping must outlive any one failure: readiness and the watchdog depend on it.
                log.exception("housekeeping step failed")
            if now - last_prune > _PRUNE_EVERY_S:
                last_prune = now
            await asyncio.sleep(_HOUSEKEEPING_S)

    async def _tick(self, prune: bool) -> None:
        ready = self.ready
        if ready != self._ready:
            self._ready = ready
            await self._set_health(health.SERVING if ready else health.NOT_SERVING)
            log.info("readiness changed", extra={"ready": ready})
        self._gauges()
        if self.routes is not None and self.routes.due():
            await asyncio.to_thread(self.routes.poll)
        if prune:
            await asyncio.to_thread(self.revocations.prune, time.time())
        self.feed.watchdog()

    def _gauges(self) -> None:
        m = self.metrics
        m.ready.set(1 if self._ready else 0)
        age = self.keys.age_s()
        m.jwks_age.set(age if age != float("inf") else -1)
        lag = self.revocations.lag_s()
        m.feed_lag.set(lag if lag != float("inf") else -1)
        for kind, count in self.revocations.size().items():
            m.revocations.labels(kind).set(count)


async def serve(settings: Settings, metrics: Metrics | None = None, *, reuse_port: bool = False) -> None:
    """Run one worker until SIGTERM or SIGINT, then stop gracefully."""
    sidecar = Sidecar(settings, metrics, reuse_port=reuse_port)
    await sidecar.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("sidecar stopping")
    await sidecar.stop()
