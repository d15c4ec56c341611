"""The token service's configuration: one frozen object built from the environment at start-up.

Each field carries its default and unit; :meth:`Settings.from_env` is the only place that reads
environment variables and raises :class:`SettingsError` naming the variable when a value is bad.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from native_iam import claims
from native_iam.runtime.env import Env, EnvError, IPNetwork
from native_iam.runtime.logs import LOG_FORMATS, LOG_LEVELS

__all__ = ["Settings", "SettingsError"]


#: Where each listener's address comes from (variable, and the flag of `native-iam token-service`),
#: for the one-line error a listener that cannot open gives.
GRPC_LISTEN = "NATIVE_IAM_GRPC_LISTEN or --grpc-listen"
HTTP_LISTEN = "NATIVE_IAM_HTTP_LISTEN or --http-listen"
METRICS_LISTEN = "NATIVE_IAM_METRICS_LISTEN or --metrics-listen"


#: A bad value: the message starts with the variable (the one error class of both roles).
SettingsError = EnvError


@dataclass(frozen=True, slots=True)
class Settings:
    # --- store and optional services (seed names) ---
    #: SYSTEM_DB_URL: sqlite:///path (embedded) or postgresql://… (replicas).
    db_url: str = "sqlite:///./native-iam.db"
    #: SYSTEM_CACHE_URL: optional Redis; accepted for compatibility, counters live in the database.
    cache_url: str | None = None
    #: SYSTEM_TELEMETRY_EXPORTER_ENDPOINT: OTLP/gRPC endpoint; unset = no traces.
    telemetry_endpoint: str | None = None
    #: NATIVE_IAM_DB_POOL_SIZE: connections per process (PostgreSQL).
    db_pool_size: int = 10

    # --- listeners ---
    grpc_listen: str = "0.0.0.0:50051"  # NATIVE_IAM_GRPC_LISTEN
    http_listen: str = "0.0.0.0:8080"  # NATIVE_IAM_HTTP_LISTEN
    metrics_listen: str = "0.0.0.0:9464"  # NATIVE_IAM_METRICS_LISTEN; empty, off or none = no metrics server
    shutdown_grace_s: float = 10.0  # NATIVE_IAM_SHUTDOWN_GRACE_S: seconds in-flight RPCs get on SIGTERM
    workers: int = 1  # NATIVE_IAM_WORKERS: serving processes sharing the ports (SO_REUSEPORT); 0 = one per CPU

    # --- HTTP connections (slow or idle clients must not hold the port: token_service/http_guard.py) ---
    http_header_timeout_s: float = 5.0  # NATIVE_IAM_HTTP_HEADER_TIMEOUT_S: whole request head, from its first byte
    http_body_timeout_s: float = 10.0  # NATIVE_IAM_HTTP_BODY_TIMEOUT_S: whole request body, from the end of the head
    http_keepalive_s: float = 5.0  # NATIVE_IAM_HTTP_KEEPALIVE_S: idle time allowed between requests
    #: NATIVE_IAM_HTTP_MAX_CONNECTIONS: per process, and never more than half the open-file limit;
    #: beyond it the oldest connection not in a request is closed.
    http_max_connections: int = 1000

    # --- tokens ---
    issuer: str = "http://localhost:8080"  # NATIVE_IAM_ISSUER: `iss` of every token
    audience: str = "native-iam"  # NATIVE_IAM_AUDIENCE: default `aud` of access tokens
    grpc_client_id: str = "native-iam"  # NATIVE_IAM_GRPC_CLIENT_ID: `client_id` of tokens issued over gRPC
    access_token_ttl_s: int = 3600  # NATIVE_IAM_ACCESS_TOKEN_TTL_S
    refresh_token_ttl_s: int = 30 * 24 * 3600  # NATIVE_IAM_REFRESH_TOKEN_TTL_S

    # --- signing keys ---
    signing_alg: str = "ES256"  # NATIVE_IAM_SIGNING_ALG: ES256 | RS256 | EdDSA | HS256
    signing_keys_dir: Path | None = None  # NATIVE_IAM_SIGNING_KEYS_DIR: PEM files; unset = generate and store
    hmac_key_bytes: int = 32  # NATIVE_IAM_HS256_KEY_BYTES: 32, 48 or 64 (generated HS256 keys)
    key_publish_delay_s: int = (
        300  # NATIVE_IAM_KEY_PUBLISH_DELAY_S: a rotated key is in the JWKS this long before it signs
    )
    key_reload_s: float = 10.0  # NATIVE_IAM_KEY_RELOAD_S: how often a replica re-reads keys from the database
    jwks_max_age_s: int = 300  # NATIVE_IAM_JWKS_MAX_AGE_S: cache lifetime given to JWKS consumers

    # --- passwords (argon2id, OWASP 2023 minimum: m=19456 KiB, t=2, p=1) ---
    argon2_memory_kib: int = 19456  # NATIVE_IAM_ARGON2_MEMORY_KIB
    argon2_time_cost: int = 2  # NATIVE_IAM_ARGON2_TIME_COST: iterations
    argon2_parallelism: int = 1  # NATIVE_IAM_ARGON2_PARALLELISM: lanes
    password_workers: int = 0  # NATIVE_IAM_PASSWORD_WORKERS: verify threads; 0 = one per CPU

    # --- brute-force protection ---
    lockout_enabled: bool = True  # NATIVE_IAM_LOCKOUT_ENABLED
    lockout_free_attempts: int = 5  # NATIVE_IAM_LOCKOUT_FREE_ATTEMPTS: failures before back-off starts
    lockout_base_s: float = 1.0  # NATIVE_IAM_LOCKOUT_BASE_S: first back-off, doubled per further failure
    lockout_max_s: float = 900.0  # NATIVE_IAM_LOCKOUT_MAX_S: back-off cap = lockout duration
    lockout_reset_s: float = 3600.0  # NATIVE_IAM_LOCKOUT_RESET_S: quiet time after which failures are forgotten
    #: NATIVE_IAM_LOCKOUT_ADDRESS_FREE_ATTEMPTS: failures from one client address (any identity)
    #: before its back-off starts; higher than per identity, as several users may share an address.
    lockout_address_free_attempts: int = 20
    #: NATIVE_IAM_TRUSTED_PROXIES: CIDRs of the reverse proxies in front of the HTTP endpoints. A
    #: request from one of them is attributed to the rightmost X-Forwarded-For entry that is not
    #: itself a trusted proxy; from anybody else, X-Forwarded-For is ignored. Empty: the TCP peer.
    trusted_proxies: tuple[IPNetwork, ...] = ()

    # --- housekeeping ---
    #: NATIVE_IAM_PRUNE_INTERVAL_S: how often expired lockout counters and tokens expired for longer
    #: than the feed retention are deleted, seconds; 0 = never.
    prune_interval_s: float = 300.0

    # --- revocation feed ---
    feed_heartbeat_s: float = 5.0  # NATIVE_IAM_FEED_HEARTBEAT_S
    feed_poll_s: float = 0.5  # NATIVE_IAM_FEED_POLL_S: tailing interval (PostgreSQL adds LISTEN/NOTIFY)
    feed_retention_s: int = 7 * 24 * 3600  # NATIVE_IAM_FEED_RETENTION_S: events older than this are compacted

    # --- CheckAccess cache (verified tokens whose stored state was good; void on any feed event) ---
    check_cache_size: int = 100_000  # NATIVE_IAM_CHECK_CACHE_SIZE: entries; 0 = always ask the database
    check_cache_ttl_s: float = 60.0  # NATIVE_IAM_CHECK_CACHE_TTL_S: entry lifetime (never past the token's exp)

    # --- bootstrap ---
    bootstrap_admin: str | None = None  # NATIVE_IAM_BOOTSTRAP_ADMIN: name of a global admin identity
    bootstrap_admin_password: str | None = None  # NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD (or …_PASSWORD_FILE)

    # --- OAuth HTTP endpoints (issue 3) ---
    #: NATIVE_IAM_CLIENT_SECRET_KEY (or …_FILE): HMAC-SHA-256 key for stored client secrets, at
    #: least 32 bytes; unset = generated once and stored in the database.
    client_secret_key: str | None = None
    #: NATIVE_IAM_REFRESH_GRACE_S: with rotation, a spent refresh token presented again within this
    #: many seconds gets a fresh pair (concurrent retries); later, its whole family is revoked.
    refresh_grace_s: float = 5.0
    #: NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE: which of an identity's earlier tokens a password change
    #: revokes (OWASP ASVS V3): all (refresh and access tokens) | refresh | off.
    revoke_on_password_change: str = "all"

    # --- revocation feed credential ---
    #: NATIVE_IAM_FEED_TOKEN (or …_FILE): the bearer token(s) WatchRevocations accepts (sidecars send
    #: theirs as NATIVE_IAM_FEED_TOKEN too); several, separated by spaces, during a rotation. Each
    #: at least 32 bytes of visible ASCII. Unset: the feed refuses every caller.
    feed_tokens: tuple[str, ...] = ()

    # --- logs ---
    log_level: str = "INFO"  # NATIVE_IAM_LOG_LEVEL
    log_format: str = "json"  # NATIVE_IAM_LOG_FORMAT: json | text

    def __repr__(self) -> str:
        # Never print the bootstrap password.
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if shown["bootstrap_admin_password"]:
            shown["bootstrap_admin_password"] = "***"
        if shown["client_secret_key"]:
            shown["client_secret_key"] = "***"
        shown["feed_tokens"] = tuple("***" for _ in self.feed_tokens)
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def max_token_ttl_s(self) -> int:
        return max(self.access_token_ttl_s, self.refresh_token_ttl_s)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``); ``overrides`` win (tests, CLI flags)."""
        d = cls()
        r = Env(env)
        values: dict[str, Any] = {
            "db_url": r.text("SYSTEM_DB_URL", d.db_url, check=_db_url),
            "cache_url": r.text("SYSTEM_CACHE_URL", None),
            "telemetry_endpoint": r.text("SYSTEM_TELEMETRY_EXPORTER_ENDPOINT", None),
            "db_pool_size": r.integer("NATIVE_IAM_DB_POOL_SIZE", d.db_pool_size, low=1),
            "grpc_listen": r.listen("NATIVE_IAM_GRPC_LISTEN", d.grpc_listen),
            "http_listen": r.listen("NATIVE_IAM_HTTP_LISTEN", d.http_listen),
            "metrics_listen": r.listen("NATIVE_IAM_METRICS_LISTEN", d.metrics_listen, optional=True),
            "shutdown_grace_s": r.number("NATIVE_IAM_SHUTDOWN_GRACE_S", d.shutdown_grace_s, low=0),
            "workers": r.workers("NATIVE_IAM_WORKERS", d.workers, per_cpu=True),
            "http_header_timeout_s": r.number("NATIVE_IAM_HTTP_HEADER_TIMEOUT_S", d.http_header_timeout_s, low=0.1),
            "http_body_timeout_s": r.number("NATIVE_IAM_HTTP_BODY_TIMEOUT_S", d.http_body_timeout_s, low=0.1),
            "http_keepalive_s": r.number("NATIVE_IAM_HTTP_KEEPALIVE_S", d.http_keepalive_s, low=0.1),
            "http_max_connections": r.integer("NATIVE_IAM_HTTP_MAX_CONNECTIONS", d.http_max_connections, low=1),
            "issuer": r.text("NATIVE_IAM_ISSUER", d.issuer),
            "audience": r.text("NATIVE_IAM_AUDIENCE", d.audience),
            "grpc_client_id": r.text("NATIVE_IAM_GRPC_CLIENT_ID", d.grpc_client_id),
            "access_token_ttl_s": r.integer("NATIVE_IAM_ACCESS_TOKEN_TTL_S", d.access_token_ttl_s, low=1),
            "refresh_token_ttl_s": r.integer("NATIVE_IAM_REFRESH_TOKEN_TTL_S", d.refresh_token_ttl_s, low=1),
            "signing_alg": r.text("NATIVE_IAM_SIGNING_ALG", d.signing_alg, check=_algorithm),
            "signing_keys_dir": r.directory("NATIVE_IAM_SIGNING_KEYS_DIR"),
            "hmac_key_bytes": r.integer("NATIVE_IAM_HS256_KEY_BYTES", d.hmac_key_bytes, choices=(32, 48, 64)),
            "key_publish_delay_s": r.integer("NATIVE_IAM_KEY_PUBLISH_DELAY_S", d.key_publish_delay_s, low=0),
            "key_reload_s": r.number("NATIVE_IAM_KEY_RELOAD_S", d.key_reload_s, low=0.1),
            "jwks_max_age_s": r.integer("NATIVE_IAM_JWKS_MAX_AGE_S", d.jwks_max_age_s, low=0),
            "argon2_memory_kib": r.integer("NATIVE_IAM_ARGON2_MEMORY_KIB", d.argon2_memory_kib, low=8),
            "argon2_time_cost": r.integer("NATIVE_IAM_ARGON2_TIME_COST", d.argon2_time_cost, low=1),
            "argon2_parallelism": r.integer("NATIVE_IAM_ARGON2_PARALLELISM", d.argon2_parallelism, low=1),
            "password_workers": r.integer("NATIVE_IAM_PASSWORD_WORKERS", d.password_workers, low=0),
            "lockout_enabled": r.boolean("NATIVE_IAM_LOCKOUT_ENABLED", d.lockout_enabled),
            "lockout_free_attempts": r.integer("NATIVE_IAM_LOCKOUT_FREE_ATTEMPTS", d.lockout_free_attempts, low=1),
            "lockout_base_s": r.number("NATIVE_IAM_LOCKOUT_BASE_S", d.lockout_base_s, low=0),
            "lockout_max_s": r.number("NATIVE_IAM_LOCKOUT_MAX_S", d.lockout_max_s, low=0),
            "lockout_reset_s": r.number("NATIVE_IAM_LOCKOUT_RESET_S", d.lockout_reset_s, low=1),
            "lockout_address_free_attempts": r.integer(
                "NATIVE_IAM_LOCKOUT_ADDRESS_FREE_ATTEMPTS", d.lockout_address_free_attempts, low=1
            ),
            "trusted_proxies": r.networks("NATIVE_IAM_TRUSTED_PROXIES"),
            "prune_interval_s": r.number("NATIVE_IAM_PRUNE_INTERVAL_S", d.prune_interval_s, low=0),
            "feed_heartbeat_s": r.number("NATIVE_IAM_FEED_HEARTBEAT_S", d.feed_heartbeat_s, low=0.05),
            "feed_poll_s": r.number("NATIVE_IAM_FEED_POLL_S", d.feed_poll_s, low=0.01),
            "feed_retention_s": r.integer("NATIVE_IAM_FEED_RETENTION_S", d.feed_retention_s, low=60),
            "check_cache_size": r.integer("NATIVE_IAM_CHECK_CACHE_SIZE", d.check_cache_size, low=0),
            "check_cache_ttl_s": r.number("NATIVE_IAM_CHECK_CACHE_TTL_S", d.check_cache_ttl_s, low=0),
            "bootstrap_admin": r.text("NATIVE_IAM_BOOTSTRAP_ADMIN", None),
            "bootstrap_admin_password": r.secret("NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD"),
            "client_secret_key": r.secret("NATIVE_IAM_CLIENT_SECRET_KEY"),
            "refresh_grace_s": r.number("NATIVE_IAM_REFRESH_GRACE_S", d.refresh_grace_s, low=0),
            "revoke_on_password_change": r.choice(
                "NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE", d.revoke_on_password_change, ("all", "refresh", "off")
            ),
            "feed_tokens": _feed_tokens(r.secret("NATIVE_IAM_FEED_TOKEN")),
            "log_level": r.choice("NATIVE_IAM_LOG_LEVEL", d.log_level, LOG_LEVELS).upper(),
            "log_format": r.choice("NATIVE_IAM_LOG_FORMAT", d.log_format, LOG_FORMATS),
        }
        values.update(overrides)
        settings = cls(**values)
        if settings.client_secret_key is not None and len(settings.client_secret_key.encode("utf-8")) < 32:
            raise SettingsError(
                "NATIVE_IAM_CLIENT_SECRET_KEY", "must be at least 32 bytes (e.g. `openssl rand -hex 32`)"
            )
        if settings.bootstrap_admin and not settings.bootstrap_admin_password:
            raise SettingsError(
                "NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD",
                "required when NATIVE_IAM_BOOTSTRAP_ADMIN is set (or use NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD_FILE)",
            )
        return settings


def _feed_tokens(value: str | None) -> tuple[str, ...]:
    tokens = tuple((value or "").split())
    if any(len(t) < 32 or not t.isascii() or not t.isprintable() for t in tokens):
        raise SettingsError(
            "NATIVE_IAM_FEED_TOKEN", "each token must be at least 32 visible ASCII characters (`openssl rand -hex 32`)"
        )
    return tokens


def _db_url(value: str) -> str | None:
    if value.startswith(
        ("sqlite:///", "sqlite+aiosqlite:///", "postgresql://", "postgresql+asyncpg://", "postgres://")
    ):
        return None
    return "expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB"


def _algorithm(value: str) -> str | None:
    if value in claims.ALL_ALGORITHMS:
        return None
    return f"expected one of {', '.join(claims.ALL_ALGORITHMS)}, got {value!r}"
