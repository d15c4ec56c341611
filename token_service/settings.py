"""The token service's configuration: one frozen object built from the environment at start-up.

Each field carries its default, its environment variable and what it means (``docs/configuration.md``
is rendered from them: ``./dev docs``); :meth:`Settings.from_env` is the only place that reads
environment variables and raises :class:`SettingsError` naming the variable when a value is bad.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from native_iam import claims
from native_iam.envdoc import setting
from native_iam.runtime.env import Env, EnvError, IPNetwork
from native_iam.runtime.logs import LOG_FORMATS, LOG_LEVELS

__all__ = ["Settings", "SettingsError", "redacted_url"]


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
    db_url: str = setting(
        "SYSTEM_DB_URL",
        "database: `sqlite:///PATH` (one replica) or `postgresql://USER:PASSWORD@HOST:PORT/DB` (replicas)",
        "sqlite:///./native-iam.db",
    )
    cache_url: str | None = setting(
        "SYSTEM_CACHE_URL",
        "Redis shared by every replica: `redis://[:PASSWORD@]HOST:PORT/DB` or `rediss://…` (TLS). Set: brute-force"
        " counters, short-lived state (codes, sessions, nonces, single-use jtis) and CheckAccess cache invalidation"
        " across replicas live there ([Redis](redis.md)); unset: the database"
        " alone. Logged with its password masked",
        None,
    )
    telemetry_endpoint: str | None = setting(
        "SYSTEM_TELEMETRY_EXPORTER_ENDPOINT",
        "OTLP/gRPC endpoint for traces (e.g. `otel-collector:4317`); unset = no tracing",
        None,
    )
    db_pool_size: int = setting(
        "NATIVE_IAM_DB_POOL_SIZE",
        "PostgreSQL connections per serving process (plus as many overflow); with `NATIVE_IAM_WORKERS` each worker"
        " has its own pool",
        10,
    )

    cache_pool_size: int = setting(
        "NATIVE_IAM_CACHE_POOL_SIZE", "Redis connections per serving process (`SYSTEM_CACHE_URL`)", 20
    )
    cache_connect_timeout_s: float = setting(
        "NATIVE_IAM_CACHE_CONNECT_TIMEOUT_S", "time to open a connection to Redis before the call fails", 1.0
    )
    cache_command_timeout_s: float = setting(
        "NATIVE_IAM_CACHE_COMMAND_TIMEOUT_S",
        "time one Redis command may take before it fails (a slow Redis must not hang grants)",
        0.5,
    )
    cache_retries: int = setting(
        "NATIVE_IAM_CACHE_RETRIES",
        "retries of a Redis command after a connection error or timeout (with a short back-off) before the caller"
        " gets `UNAVAILABLE` / 503 `temporarily_unavailable`",
        1,
    )

    # --- listeners ---
    grpc_listen: str = setting(
        "NATIVE_IAM_GRPC_LISTEN", "gRPC: OAuth, Feed, admin, health, reflection", "0.0.0.0:50051"
    )
    http_listen: str = setting("NATIVE_IAM_HTTP_LISTEN", "OAuth 2.0 HTTP endpoints", "0.0.0.0:8080")
    metrics_listen: str = setting(
        "NATIVE_IAM_METRICS_LISTEN",
        "Prometheus `/metrics`; empty, `off` or `none` disables (as in the sidecar)",
        "0.0.0.0:9464",
    )
    shutdown_grace_s: float = setting("NATIVE_IAM_SHUTDOWN_GRACE_S", "time in-flight calls get after SIGTERM", 10.0)
    workers: int = setting(
        "NATIVE_IAM_WORKERS",
        "serving processes sharing the gRPC and HTTP ports (SO_REUSEPORT); 0 = one per CPU. Needs fixed ports; the"
        " supervising process runs migrations and bootstrap once and serves the merged metrics. Best with PostgreSQL:"
        " on SQLite the workers queue for the one writer (a file lock) and their feed streams carry each other's"
        " revocation events only at the next poll (CheckAccess refuses a revoked token at once in every worker: they"
        " share a revocation counter). Measured side by side on the 2 shared cores, 2 workers against 1 on SQLite:"
        " CheckAccess ×1.49, password grant ×1.18, refresh grant ×0.96 (40 % more CPU per grant: the processes share"
        " the database file)",
        1,
    )

    # --- HTTP connections (slow or idle clients must not hold the port: token_service/api/http/guard.py) ---
    http_header_timeout_s: float = setting(
        "NATIVE_IAM_HTTP_HEADER_TIMEOUT_S",
        "HTTP: time a client has to send a whole request head (at most 64 KiB, else 431), from its first byte; then"
        " 408 and close. Also the gRPC port's deadline for the HTTP/2 handshake",
        5.0,
    )
    http_body_timeout_s: float = setting(
        "NATIVE_IAM_HTTP_BODY_TIMEOUT_S",
        "HTTP: time a client has to send a whole request body, from the end of its head; then 408 and close",
        10.0,
    )
    http_keepalive_s: float = setting(
        "NATIVE_IAM_HTTP_KEEPALIVE_S", "HTTP: idle time allowed between requests on one connection", 5.0
    )
    http_max_connections: int = setting(
        "NATIVE_IAM_HTTP_MAX_CONNECTIONS",
        "HTTP connections per process, and never more than half the open-file limit (`ulimit -n`), so the gRPC port"
        " keeps descriptors; a connection beyond it closes the oldest one not in a request (idle or still sending"
        " its head), and only when every other is in a request is the new one refused (503). See"
        " [Slow clients](security.md#slow-clients)",
        1000,
    )

    # --- tokens ---
    issuer: str = setting("NATIVE_IAM_ISSUER", "`iss` of every token", "http://localhost:8080")
    audience: str = setting(
        "NATIVE_IAM_AUDIENCE",
        "default `aud` of access tokens (a sidecar accepts the audiences in its `NATIVE_IAM_ACCEPTED_AUDIENCES`)",
        "native-iam",
    )
    grpc_client_id: str = setting(
        "NATIVE_IAM_GRPC_CLIENT_ID",
        "`client_id` claim of tokens issued over gRPC (no OAuth client involved)",
        "native-iam",
    )
    access_token_ttl_s: int = setting("NATIVE_IAM_ACCESS_TOKEN_TTL_S", "access token lifetime", 3600)
    refresh_token_ttl_s: int = setting(
        "NATIVE_IAM_REFRESH_TOKEN_TTL_S", "refresh token lifetime (default: 30 days)", 30 * 24 * 3600
    )

    # --- signing keys ---
    signing_alg: str = setting("NATIVE_IAM_SIGNING_ALG", "`ES256`, `RS256`, `EdDSA` or `HS256`", "ES256")
    signing_keys_dir: Path | None = setting(  # noqa: RUF009 - a dataclasses.field, like the others
        "NATIVE_IAM_SIGNING_KEYS_DIR",
        "directory of `*.pem` / `*.hs256` key files (a Secret); unset = generate and store keys",
        None,
    )
    hmac_key_bytes: int = setting("NATIVE_IAM_HS256_KEY_BYTES", "size of generated HS256 keys: 32, 48 or 64", 32)
    key_publish_delay_s: int = setting(
        "NATIVE_IAM_KEY_PUBLISH_DELAY_S", "a rotated key is in the JWKS this long before it signs", 300
    )
    key_reload_s: float = setting(
        "NATIVE_IAM_KEY_RELOAD_S", "how often a replica re-reads keys from the database", 10.0
    )
    jwks_max_age_s: int = setting(
        "NATIVE_IAM_JWKS_MAX_AGE_S",
        "how long JWKS consumers may cache it (a sidecar's outage limit is its `NATIVE_IAM_JWKS_MAX_STALENESS_S`)",
        300,
    )

    # --- passwords (argon2id, OWASP 2023 minimum: m=19456 KiB, t=2, p=1) ---
    argon2_memory_kib: int = setting("NATIVE_IAM_ARGON2_MEMORY_KIB", "argon2id memory cost", 19456)
    argon2_time_cost: int = setting("NATIVE_IAM_ARGON2_TIME_COST", "argon2id iterations", 2)
    argon2_parallelism: int = setting("NATIVE_IAM_ARGON2_PARALLELISM", "argon2id lanes", 1)
    password_workers: int = setting("NATIVE_IAM_PASSWORD_WORKERS", "password-verification threads; 0 = one per CPU", 0)

    # --- brute-force protection ---
    lockout_enabled: bool = setting(
        "NATIVE_IAM_LOCKOUT_ENABLED", "brute-force protection per identity and per client address", True
    )
    lockout_free_attempts: int = setting(
        "NATIVE_IAM_LOCKOUT_FREE_ATTEMPTS", "consecutive failures before back-off starts", 5
    )
    lockout_base_s: float = setting(
        "NATIVE_IAM_LOCKOUT_BASE_S", "first back-off; doubles with each further failure", 1.0
    )
    lockout_max_s: float = setting("NATIVE_IAM_LOCKOUT_MAX_S", "back-off cap = lockout duration", 900.0)
    lockout_reset_s: float = setting(
        "NATIVE_IAM_LOCKOUT_RESET_S", "quiet time after which failures are forgotten", 3600.0
    )
    # Higher than per identity: several users may share an address.
    lockout_address_free_attempts: int = setting(
        "NATIVE_IAM_LOCKOUT_ADDRESS_FREE_ATTEMPTS",
        "failures from one client address (HTTP), any identities, before its back-off starts",
        20,
    )
    trusted_proxies: tuple[IPNetwork, ...] = setting(
        "NATIVE_IAM_TRUSTED_PROXIES",
        "CIDRs (comma- or space-separated) of reverse proxies in front of the HTTP endpoints: from them the client"
        " address is the rightmost `X-Forwarded-For` entry not in this list; from any other peer `X-Forwarded-For`"
        " is ignored. Unset: the TCP peer",
        (),
    )

    # --- housekeeping ---
    prune_interval_s: float = setting(
        "NATIVE_IAM_PRUNE_INTERVAL_S",
        "how often expired lockout counters and tokens expired for longer than `NATIVE_IAM_FEED_RETENTION_S` are"
        " deleted; `0` = never",
        300.0,
    )

    # --- revocation feed ---
    feed_heartbeat_s: float = setting("NATIVE_IAM_FEED_HEARTBEAT_S", "revocation-feed heartbeat interval", 5.0)
    feed_poll_s: float = setting(
        "NATIVE_IAM_FEED_POLL_S", "revocation-feed tailing interval (PostgreSQL also wakes on NOTIFY)", 0.5
    )
    feed_retention_s: int = setting(
        "NATIVE_IAM_FEED_RETENTION_S",
        "events older than this are compacted; older cursors get a snapshot (default: 7 days)",
        7 * 24 * 3600,
    )

    # --- CheckAccess cache (verified tokens whose stored state was good; void on any feed event) ---
    check_cache_size: int = setting(
        "NATIVE_IAM_CHECK_CACHE_SIZE",
        "CheckAccess cache entries (tokens already verified and found alive in the store); `0` = every check reads"
        " the database. Any revocation event (written here, or read by the feed tail from another replica or worker)"
        " voids the whole cache; a feed tail that has not read for 4 × `NATIVE_IAM_FEED_POLL_S` (at least 1 s)"
        " switches it off until it reads again",
        100_000,
    )
    check_cache_ttl_s: float = setting(
        "NATIVE_IAM_CHECK_CACHE_TTL_S", "longest life of a CheckAccess cache entry, never past the token's `exp`", 60.0
    )

    # --- bootstrap ---
    bootstrap_admin: str | None = setting(
        "NATIVE_IAM_BOOTSTRAP_ADMIN", "name of a global identity created at start-up with policy `iam:admin`", None
    )
    bootstrap_admin_password: str | None = setting(
        "NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD",
        "its password (or `NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD_FILE`: a file holding it)",
        None,
    )

    # --- OAuth HTTP endpoints ---
    client_secret_key: str | None = setting(
        "NATIVE_IAM_CLIENT_SECRET_KEY",
        "HMAC-SHA-256 key (≥ 32 bytes) for stored OAuth client secrets (or `NATIVE_IAM_CLIENT_SECRET_KEY_FILE`);"
        " unset = generated once and stored in the database. Changing it invalidates every client secret",
        None,
    )
    refresh_grace_s: float = setting(
        "NATIVE_IAM_REFRESH_GRACE_S",
        "refresh-token rotation: time during which a spent refresh token still gets a fresh pair (concurrent"
        " retries); a reuse after it revokes the token's family",
        5.0,
    )
    authorization_code_ttl_s: int = setting(
        "NATIVE_IAM_AUTHORIZATION_CODE_TTL_S",
        "lifetime of an authorization code (seconds, at most 60; RFC 6749 §4.1.2 says 10 minutes at most, OAuth 2.1"
        " and this service much less)",
        60,
    )
    login_session_ttl_s: int = setting(
        "NATIVE_IAM_LOGIN_SESSION_TTL_S",
        "lifetime of a browser login session at the authorization endpoint (seconds): within it, a client's"
        " authorization request needs no new sign-in. RP-initiated logout (/oauth2/logout) ends it early",
        3600,
    )
    revoke_on_password_change: str = setting(
        "NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE",
        "which of an identity's earlier tokens a password change revokes (OWASP ASVS V3): `all` (refresh and access"
        " tokens), `refresh`, or `off`",
        "all",
    )

    # --- Kubernetes service-account federation (token_service/federation/) ---
    cluster_issuers_file: Path | None = setting(  # noqa: RUF009 - a dataclasses.field, like the others
        "NATIVE_IAM_CLUSTER_ISSUERS_FILE",
        "JSON file of trusted Kubernetes cluster issuers: issuer URL, JWKS source (OIDC discovery, a JWKS URI or a"
        " file), expected audience, clock skew, single-use assertions, and the mapping"
        " `system:serviceaccount:<namespace>:<name>` (or `:<namespace>:*`) → OAuth client id. A workload then"
        " authenticates with its projected service-account token (`client_assertion`, RFC 7523). Read at start-up;"
        " a bad file stops it. Unset: no cluster is trusted. Format and rules: [Cluster issuers]"
        "(token-service.md#cluster-issuers)",
        None,
    )

    # --- revocation feed credential ---
    feed_tokens: tuple[str, ...] = setting(
        "NATIVE_IAM_FEED_TOKEN",
        "bearer token(s) `WatchRevocations` accepts (or `NATIVE_IAM_FEED_TOKEN_FILE`); several, space-separated,"
        " during a rotation; each ≥ 32 visible ASCII characters. Unset: every subscriber is refused"
        " (UNAUTHENTICATED)",
        (),
    )

    # --- logs ---
    log_level: str = setting("NATIVE_IAM_LOG_LEVEL", "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`", "INFO")
    log_format: str = setting(
        "NATIVE_IAM_LOG_FORMAT",
        "`json` (one object per line: `ts`, `level`, `logger`, `msg`, context fields, `exc`; secret-named fields and"
        " JWTs masked) or `text` (one line per record: control characters and U+2028/2029 escaped, so a"
        " client-chosen value cannot start a line)",
        "json",
    )

    def __repr__(self) -> str:
        # Never print the bootstrap password.
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if shown["bootstrap_admin_password"]:
            shown["bootstrap_admin_password"] = "***"
        if shown["client_secret_key"]:
            shown["client_secret_key"] = "***"
        shown["feed_tokens"] = tuple("***" for _ in self.feed_tokens)
        if shown["cache_url"]:
            shown["cache_url"] = redacted_url(shown["cache_url"])
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
            "cache_url": r.text("SYSTEM_CACHE_URL", None, check=_cache_url),
            "cache_pool_size": r.integer("NATIVE_IAM_CACHE_POOL_SIZE", d.cache_pool_size, low=1),
            "cache_connect_timeout_s": r.number(
                "NATIVE_IAM_CACHE_CONNECT_TIMEOUT_S", d.cache_connect_timeout_s, low=0.01
            ),
            "cache_command_timeout_s": r.number(
                "NATIVE_IAM_CACHE_COMMAND_TIMEOUT_S", d.cache_command_timeout_s, low=0.01
            ),
            "cache_retries": r.integer("NATIVE_IAM_CACHE_RETRIES", d.cache_retries, low=0),
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
            "authorization_code_ttl_s": r.integer(
                "NATIVE_IAM_AUTHORIZATION_CODE_TTL_S", d.authorization_code_ttl_s, low=1, high=60
            ),
            "login_session_ttl_s": r.integer("NATIVE_IAM_LOGIN_SESSION_TTL_S", d.login_session_ttl_s, low=60),
            "revoke_on_password_change": r.choice(
                "NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE", d.revoke_on_password_change, ("all", "refresh", "off")
            ),
            "cluster_issuers_file": _file(r.text("NATIVE_IAM_CLUSTER_ISSUERS_FILE", None)),
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


def _file(value: str | None) -> Path | None:
    if value is None:
        return None
    if not Path(value).is_file():
        raise SettingsError("NATIVE_IAM_CLUSTER_ISSUERS_FILE", f"not a readable file: {value}")
    return Path(value)


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


def _cache_url(value: str) -> str | None:
    # Never echo the value: it may hold the Redis password.
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is not None and parts.scheme in ("redis", "rediss") and parts.hostname:
        return None
    return "expected redis://[:PASSWORD@]HOST:PORT/DB or rediss://… (TLS)"


def redacted_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: safe for logs and reprs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


def _algorithm(value: str) -> str | None:
    if value in claims.ALL_ALGORITHMS:
        return None
    return f"expected one of {', '.join(claims.ALL_ALGORITHMS)}, got {value!r}"
