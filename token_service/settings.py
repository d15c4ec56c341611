"""The token service's configuration: one frozen object built from the environment at start-up.

Each field carries its default, its environment variable and what it means (``docs/configuration.md``
is rendered from them: ``./dev docs``); :meth:`Settings.from_env` is the only place that reads
environment variables and raises :class:`SettingsError` naming the variable when a value is bad.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from native_iam import claims
from native_iam.envdoc import setting

__all__ = ["Settings", "SettingsError"]

T = TypeVar("T")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


#: Where each listener's address comes from (variable, and the flag of `native-iam token-service`),
#: for the one-line error a listener that cannot open gives.
GRPC_LISTEN = "NATIVE_IAM_GRPC_LISTEN or --grpc-listen"
HTTP_LISTEN = "NATIVE_IAM_HTTP_LISTEN or --http-listen"
METRICS_LISTEN = "NATIVE_IAM_METRICS_LISTEN or --metrics-listen"


class SettingsError(ValueError):
    """An environment variable has a value the token service cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {problem}")


@dataclass(frozen=True, slots=True)
class Settings:
    # --- store and optional services (seed names) ---
    db_url: str = setting(
        "SYSTEM_DB_URL",
        "database: `sqlite:///PATH` (one replica) or `postgresql://USER:PASSWORD@HOST:PORT/DB` (replicas)",
        "sqlite:///./native-iam.db",
    )
    cache_url: str | None = setting(
        "SYSTEM_CACHE_URL", "accepted for the seed's compatibility; brute-force counters live in the database", None
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

    # --- listeners ---
    grpc_listen: str = setting(
        "NATIVE_IAM_GRPC_LISTEN", "gRPC: OAuth, Feed, admin, health, reflection", "0.0.0.0:50051"
    )
    http_listen: str = setting("NATIVE_IAM_HTTP_LISTEN", "OAuth 2.0 HTTP endpoints", "0.0.0.0:8080")
    metrics_listen: str = setting("NATIVE_IAM_METRICS_LISTEN", "Prometheus `/metrics`; `off` disables", "0.0.0.0:9464")
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

    # --- HTTP connections (slow or idle clients must not hold the port: token_service/http_guard.py) ---
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
    audience: str = setting("NATIVE_IAM_AUDIENCE", "default `aud` of access tokens", "native-iam")
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
    jwks_max_age_s: int = setting("NATIVE_IAM_JWKS_MAX_AGE_S", "how long JWKS consumers may cache it", 300)

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
    revoke_on_password_change: str = setting(
        "NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE",
        "which of an identity's earlier tokens a password change revokes (OWASP ASVS V3): `all` (refresh and access"
        " tokens), `refresh`, or `off`",
        "all",
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
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def max_token_ttl_s(self) -> int:
        return max(self.access_token_ttl_s, self.refresh_token_ttl_s)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``); ``overrides`` win (tests, CLI flags)."""
        env = os.environ if env is None else env
        d = cls()
        r = _Reader(env)
        values: dict[str, Any] = {
            "db_url": r.str("SYSTEM_DB_URL", d.db_url, check=_db_url),
            "cache_url": r.str("SYSTEM_CACHE_URL", None),
            "telemetry_endpoint": r.str("SYSTEM_TELEMETRY_EXPORTER_ENDPOINT", None),
            "db_pool_size": r.int("NATIVE_IAM_DB_POOL_SIZE", d.db_pool_size, low=1),
            "grpc_listen": r.str("NATIVE_IAM_GRPC_LISTEN", d.grpc_listen, check=_address),
            "http_listen": r.str("NATIVE_IAM_HTTP_LISTEN", d.http_listen, check=_address),
            "metrics_listen": r.str("NATIVE_IAM_METRICS_LISTEN", d.metrics_listen, check=_optional_address),
            "shutdown_grace_s": r.float("NATIVE_IAM_SHUTDOWN_GRACE_S", d.shutdown_grace_s, low=0),
            "workers": r.int("NATIVE_IAM_WORKERS", d.workers, low=0) or (os.cpu_count() or 1),
            "http_header_timeout_s": r.float("NATIVE_IAM_HTTP_HEADER_TIMEOUT_S", d.http_header_timeout_s, low=0.1),
            "http_body_timeout_s": r.float("NATIVE_IAM_HTTP_BODY_TIMEOUT_S", d.http_body_timeout_s, low=0.1),
            "http_keepalive_s": r.float("NATIVE_IAM_HTTP_KEEPALIVE_S", d.http_keepalive_s, low=0.1),
            "http_max_connections": r.int("NATIVE_IAM_HTTP_MAX_CONNECTIONS", d.http_max_connections, low=1),
            "issuer": r.str("NATIVE_IAM_ISSUER", d.issuer, check=_nonempty),
            "audience": r.str("NATIVE_IAM_AUDIENCE", d.audience, check=_nonempty),
            "grpc_client_id": r.str("NATIVE_IAM_GRPC_CLIENT_ID", d.grpc_client_id, check=_nonempty),
            "access_token_ttl_s": r.int("NATIVE_IAM_ACCESS_TOKEN_TTL_S", d.access_token_ttl_s, low=1),
            "refresh_token_ttl_s": r.int("NATIVE_IAM_REFRESH_TOKEN_TTL_S", d.refresh_token_ttl_s, low=1),
            "signing_alg": r.str("NATIVE_IAM_SIGNING_ALG", d.signing_alg, check=_algorithm),
            "signing_keys_dir": r.path("NATIVE_IAM_SIGNING_KEYS_DIR"),
            "hmac_key_bytes": r.int("NATIVE_IAM_HS256_KEY_BYTES", d.hmac_key_bytes, choices=(32, 48, 64)),
            "key_publish_delay_s": r.int("NATIVE_IAM_KEY_PUBLISH_DELAY_S", d.key_publish_delay_s, low=0),
            "key_reload_s": r.float("NATIVE_IAM_KEY_RELOAD_S", d.key_reload_s, low=0.1),
            "jwks_max_age_s": r.int("NATIVE_IAM_JWKS_MAX_AGE_S", d.jwks_max_age_s, low=0),
            "argon2_memory_kib": r.int("NATIVE_IAM_ARGON2_MEMORY_KIB", d.argon2_memory_kib, low=8),
            "argon2_time_cost": r.int("NATIVE_IAM_ARGON2_TIME_COST", d.argon2_time_cost, low=1),
            "argon2_parallelism": r.int("NATIVE_IAM_ARGON2_PARALLELISM", d.argon2_parallelism, low=1),
            "password_workers": r.int("NATIVE_IAM_PASSWORD_WORKERS", d.password_workers, low=0),
            "lockout_enabled": r.bool("NATIVE_IAM_LOCKOUT_ENABLED", d.lockout_enabled),
            "lockout_free_attempts": r.int("NATIVE_IAM_LOCKOUT_FREE_ATTEMPTS", d.lockout_free_attempts, low=1),
            "lockout_base_s": r.float("NATIVE_IAM_LOCKOUT_BASE_S", d.lockout_base_s, low=0),
            "lockout_max_s": r.float("NATIVE_IAM_LOCKOUT_MAX_S", d.lockout_max_s, low=0),
            "lockout_reset_s": r.float("NATIVE_IAM_LOCKOUT_RESET_S", d.lockout_reset_s, low=1),
            "lockout_address_free_attempts": r.int(
                "NATIVE_IAM_LOCKOUT_ADDRESS_FREE_ATTEMPTS", d.lockout_address_free_attempts, low=1
            ),
            "trusted_proxies": r.networks("NATIVE_IAM_TRUSTED_PROXIES"),
            "prune_interval_s": r.float("NATIVE_IAM_PRUNE_INTERVAL_S", d.prune_interval_s, low=0),
            "feed_heartbeat_s": r.float("NATIVE_IAM_FEED_HEARTBEAT_S", d.feed_heartbeat_s, low=0.05),
            "feed_poll_s": r.float("NATIVE_IAM_FEED_POLL_S", d.feed_poll_s, low=0.01),
            "feed_retention_s": r.int("NATIVE_IAM_FEED_RETENTION_S", d.feed_retention_s, low=60),
            "check_cache_size": r.int("NATIVE_IAM_CHECK_CACHE_SIZE", d.check_cache_size, low=0),
            "check_cache_ttl_s": r.float("NATIVE_IAM_CHECK_CACHE_TTL_S", d.check_cache_ttl_s, low=0),
            "bootstrap_admin": r.str("NATIVE_IAM_BOOTSTRAP_ADMIN", None),
            "bootstrap_admin_password": r.secret("NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD"),
            "client_secret_key": r.secret("NATIVE_IAM_CLIENT_SECRET_KEY"),
            "refresh_grace_s": r.float("NATIVE_IAM_REFRESH_GRACE_S", d.refresh_grace_s, low=0),
            "revoke_on_password_change": r.str(
                "NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE", d.revoke_on_password_change, check=_revoke_on_password_change
            ),
            "feed_tokens": _feed_tokens(r.secret("NATIVE_IAM_FEED_TOKEN")),
            "log_level": r.str("NATIVE_IAM_LOG_LEVEL", d.log_level, check=_log_level).upper(),
            "log_format": r.str("NATIVE_IAM_LOG_FORMAT", d.log_format, check=_log_format),
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


class _Reader:
    """Typed access to environment variables; every failure names the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def str(self, name: str, default: T, check: Callable[[str], str | None] | None = None) -> str | T:
        value = self._raw(name)
        if value is None:
            return default
        if check is not None and (problem := check(value)):
            raise SettingsError(name, problem)
        return value

    def int(self, name: str, default: int, low: int | None = None, choices: tuple[int, ...] = ()) -> int:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(name, f"expected an integer, got {value!r}") from None
        if low is not None and number < low:
            raise SettingsError(name, f"must be at least {low}, got {number}")
        if choices and number not in choices:
            raise SettingsError(name, f"must be one of {', '.join(map(repr, choices))}, got {number}")
        return number

    def float(self, name: str, default: float, low: float | None = None) -> float:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(name, f"expected a number, got {value!r}") from None
        if number != number or (low is not None and number < low):  # NaN or too small
            raise SettingsError(name, f"must be a number of at least {low}, got {value!r}")
        return number

    def bool(self, name: str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(name, f"expected true or false, got {value!r}")

    def path(self, name: str) -> Path | None:
        value = self._raw(name)
        if value is None:
            return None
        path = Path(value)
        if not path.is_dir():
            raise SettingsError(name, f"{value!r} is not a directory")
        return path

    def networks(self, name: str) -> tuple[IPNetwork, ...]:
        """Comma- or space-separated CIDRs (a bare address is a /32 or /128)."""
        value = self._raw(name)
        if value is None:
            return ()
        try:
            return tuple(ipaddress.ip_network(item, strict=False) for item in value.replace(",", " ").split())
        except ValueError as exc:
            raise SettingsError(name, f"expected CIDRs such as 10.0.0.0/8, {exc}") from None

    def secret(self, name: str) -> str | None:
        """``NAME`` or the content of the file named by ``NAME_FILE`` (a mounted Secret)."""
        direct = self.env.get(name)
        file_name = self._raw(f"{name}_FILE")
        if direct and file_name:
            raise SettingsError(name, f"set either {name} or {name}_FILE, not both")
        if file_name:
            try:
                return Path(file_name).read_text(encoding="utf-8").rstrip("\r\n") or None
            except (OSError, UnicodeDecodeError) as exc:
                raise SettingsError(f"{name}_FILE", f"cannot read {file_name!r}: {exc.__class__.__name__}") from None
        return direct or None


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


def _address(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return f"expected HOST:PORT, got {value!r}"
    return None


def _optional_address(value: str) -> str | None:
    return None if value.lower() in {"off", "none"} else _address(value)


def _nonempty(value: str) -> str | None:
    return None if value else "must not be empty"


def _algorithm(value: str) -> str | None:
    if value in claims.ALL_ALGORITHMS:
        return None
    return f"expected one of {', '.join(claims.ALL_ALGORITHMS)}, got {value!r}"


def _log_level(value: str) -> str | None:
    return (
        None
        if value.upper() in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
        else "expected DEBUG|INFO|WARNING|ERROR"
    )


def _revoke_on_password_change(value: str) -> str | None:
    return None if value in {"all", "refresh", "off"} else f"expected all, refresh or off, got {value!r}"


def _log_format(value: str) -> str | None:
    return None if value in {"json", "text"} else f"expected json or text, got {value!r}"
