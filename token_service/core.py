"""What every domain function needs, built once at start-up by :mod:`token_service.app`.

Transports (gRPC now, HTTP in :mod:`token_service.api.http.routes`) hold one :class:`Core` and call the
domain functions in :mod:`token_service.grants` and :mod:`token_service.access` with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from token_service.cache import Cache
from token_service.cache.shortlived import RedisShortLived
from token_service.check_cache import CheckCache
from token_service.federation import ClientAssertions, load_trust
from token_service.keys import KeyRing
from token_service.lockout import Lockout
from token_service.metrics import Metrics
from token_service.passwords import Passwords
from token_service.settings import Settings
from token_service.shortlived import DatabaseShortLived, ShortLived
from token_service.store import Store
from token_service.store.clients import ClientRepository, client_secret_key
from token_service.tokens import TokenCodec

__all__ = ["Core"]


@dataclass
class Core:
    settings: Settings
    store: Store
    keys: KeyRing
    codec: TokenCodec
    passwords: Passwords
    lockout: Lockout
    #: CheckAccess's verified-token cache; used only while a feed tail keeps it fresh.
    checks: CheckCache
    #: The registered OAuth clients: the token endpoint authenticates against them, and a refresh
    #: token presented without client authentication (gRPC) is bound to its client through them.
    clients: ClientRepository
    #: Codes, sessions, nonces and single-use jtis (token_service/shortlived.py): the database
    #: by default; Redis when SYSTEM_CACHE_URL is set.
    short_lived: ShortLived
    clock: Callable[[], float] = field(default=time.time)
    #: The process's Prometheus metrics (set by :class:`token_service.app.TokenServiceApp`); the
    #: grant layer counts its outcomes there, once for both transports.
    metrics: Metrics | None = None
    #: The key that derives client secrets' verifiers (NATIVE_IAM_CLIENT_SECRET_KEY, else one
    #: generated once and kept in the database), loaded by :meth:`start`: the token endpoint and
    #: the admin Clients API both use it, so neither waits for the other to load it.
    client_secret_key: bytes = b""
    #: Kubernetes service-account tokens as client assertions (NATIVE_IAM_CLUSTER_ISSUERS_FILE);
    #: set by :meth:`build` (none trusted without the file).
    assertions: ClientAssertions | None = None
    #: The Redis client when SYSTEM_CACHE_URL is set (counters, short-lived state, invalidation).
    cache: Cache | None = None

    @classmethod
    def build(cls, settings: Settings) -> Core:
        """Wire the parts together (nothing touches the database yet; see :meth:`start`)."""
        store = Store(settings.db_url, settings.db_pool_size)
        keys = KeyRing(settings, store)
        checks = CheckCache(
            max_entries=settings.check_cache_size,
            ttl_s=settings.check_cache_ttl_s,
            # A few missed polls of the feed tail (PostgreSQL also wakes it by NOTIFY).
            max_staleness_s=max(1.0, 4 * settings.feed_poll_s),
        )
        # A local write that appended revocation events voids cached checks before it returns.
        store.add_commit_listener(checks.invalidate)
        cache = Cache(settings) if settings.cache_url else None
        core = cls(
            settings=settings,
            store=store,
            keys=keys,
            codec=TokenCodec(keys, settings.issuer),
            passwords=Passwords(
                settings.argon2_memory_kib,
                settings.argon2_time_cost,
                settings.argon2_parallelism,
                settings.password_workers,
            ),
            lockout=Lockout(settings, store, cache),
            checks=checks,
            clients=ClientRepository(store),
            short_lived=DatabaseShortLived(store) if cache is None else RedisShortLived(cache),
            cache=cache,
        )
        core.assertions = ClientAssertions(
            load_trust(settings.cluster_issuers_file, settings.issuer), core.short_lived, count=core.count_assertion
        )
        return core

    def count_assertion(self, outcome: str) -> None:
        """native_iam_client_assertions_total{outcome} (nothing before the app sets the metrics)."""
        if self.metrics is not None:
            self.metrics.client_assertions.labels(outcome).inc()

    async def start(self) -> None:
        """Migrate the schema, load the signing keys and the client-secret key."""
        await self.store.migrate()
        await self.keys.load()
        configured = self.settings.client_secret_key
        self.client_secret_key = await client_secret_key(self.store, configured.encode("utf-8") if configured else None)

    async def close(self) -> None:
        self.passwords.close()
        if self.cache is not None:
            await self.cache.close()
        await self.store.close()
