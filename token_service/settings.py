"""The token service's configuration: one frozen object built from the environment at start-up.

Each field carries its default and unit; :meth:`Settings.from_env` is the only place that reads
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
    metrics_listen: str = "0.0.0.0:9464"  # NATIVE_IAM_METRICS_LISTEN; empty = no metrics server
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
