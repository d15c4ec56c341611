"""The sidecar's configuration: one frozen object built from the environment at start-up.

Every field has its default and unit beside it. :func:`from_env` is the only place that reads the
environment; a bad value raises :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from native_iam.limits import MAX_TOKEN_BYTES

StalePolicy = Literal["closed", "open"]


class SettingsError(ValueError):
    """An environment variable has a value the sidecar cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    # Where the token service's gRPC API (Feed + OAuth) lives; host:port.
    token_url: str = "native-iam-token:80"
    # Seed variable: where CreateTokenWithPassword is forwarded; defaults to token_url.
    password_url: str = ""
    # Optional HTTP(S) JWKS URL used instead of Feed.GetJwks.
    jwks_url: str = ""
    issuer: str = "http://localhost:8080"
    # Accepted audiences: a token passes when its `aud` contains any of them.
    audiences: tuple[str, ...] = ("native-iam",)
    authz_listen: str = "127.0.0.1:9191"
    # Empty string: the OAuth facade is not served.
    oauth_listen: str = "127.0.0.1:9192"
    # Empty string: no metrics endpoint.
    metrics_listen: str = "0.0.0.0:9465"
    workers: int = 1
    # ext_authz server: "sync" (grpcio with a small thread pool) or "aio" (grpc.aio);
    # bench/sidecar_servers.py measured sync with 2-3 threads cheapest per Check.
    authz_server: Literal["sync", "aio"] = "sync"
    # Threads of the sync server: decisions hold the GIL, so more threads only add contention.
    authz_threads: int = 3
    feed_max_staleness_s: float = 30.0
    feed_stale_policy: StalePolicy = "closed"
    leeway_s: float = 30.0
    # Lower-case HTTP header carrying the bearer token.
    token_header: str = "authorization"
    realm: str = "native-iam"
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Last-known-good keys keep verifying through an issuer outage for at most this long (seconds).
    jwks_max_age_s: float = 86400.0
    # An unknown `kid` triggers at most one JWKS refetch per this many seconds.
    jwks_min_refetch_s: float = 5.0
    # Decision cache: entries, and the longest an entry lives (never beyond the token's exp).
    decision_cache_size: int = 100_000
    decision_cache_ttl_s: float = 300.0
    # Upstream headers set on an allowed request (lower-case); empty disables one.
    identity_header: str = "x-native-iam-identity"
    namespace_header: str = "x-native-iam-namespace"
    scopes_header: str = "x-native-iam-scopes"
    jti_header: str = "x-native-iam-jti"
    # Remove the token header before the request reaches the upstream.
    strip_token: bool = False
    # Deadline (seconds) of calls forwarded to the token service.
    forward_timeout_s: float = 5.0
    # Longest token accepted, in bytes; longer ones are denied as malformed.
    max_token_bytes: int = MAX_TOKEN_BYTES
    # Name sent to the feed as `subscriber` (pod name).
    subscriber: str = field(default_factory=lambda: os.uname().nodename)
    # The bearer token WatchRevocations requires (NATIVE_IAM_FEED_TOKEN, or the file named by
    # NATIVE_IAM_FEED_TOKEN_FILE): the one the token service accepts. Empty: the feed refuses
    # this sidecar, which then never becomes ready. Never printed.
    feed_token: str = field(default="", repr=False)

    @property
    def forward_password_url(self) -> str:
        return self.password_url or self.token_url


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, default).strip()


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float, integer: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise SettingsError(f"{name}={raw!r}: expected {kind}") from None
    if value != value or value < minimum:  # NaN compares unequal to itself
        raise SettingsError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, default).strip().lower() or default
    if value not in choices:
        raise SettingsError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false")


def _header(env: Mapping[str, str], name: str, default: str, *, required: bool = False) -> str:
    value = env.get(name, default).strip().lower()
    if required and not value:
        raise SettingsError(f"{name}: must not be empty")
    if value and not all(c.isalnum() or c in "-_" for c in value):
        raise SettingsError(f"{name}={value!r}: not an HTTP header name")
    return value


def _listen(env: Mapping[str, str], name: str, default: str, *, optional: bool) -> str:
    value = _str(env, name, default)
    if not value and optional:
        return ""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"{name}={value!r}: expected host:port")
    return value


def _secret(env: Mapping[str, str], name: str) -> str:
    """``NAME``, or the content of the file named by ``NAME_FILE`` (a mounted Kubernetes Secret)."""
    direct, file_name = env.get(name, "").strip(), env.get(f"{name}_FILE", "").strip()
    if direct and file_name:
        raise SettingsError(f"{name}: set either {name} or {name}_FILE, not both")
    if not file_name:
        return direct
    try:
        with open(file_name, encoding="utf-8") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{name}_FILE={file_name!r}: cannot read it ({type(exc).__name__})") from None


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    d = Settings()
    token_url = _str(env, "NATIVE_IAM_TOKEN_URL", d.token_url)
    if not token_url:
        raise SettingsError("NATIVE_IAM_TOKEN_URL: must not be empty")
    jwks_url = _str(env, "NATIVE_IAM_JWKS_URL", "")
    if jwks_url and not jwks_url.startswith(("http://", "https://")):
        raise SettingsError(f"NATIVE_IAM_JWKS_URL={jwks_url!r}: expected an http:// or https:// URL")
    issuer = _str(env, "NATIVE_IAM_ISSUER", d.issuer)
    if not issuer:
        raise SettingsError("NATIVE_IAM_ISSUER: must not be empty")
    audiences = tuple(a for a in _str(env, "NATIVE_IAM_AUDIENCE", "native-iam").replace(",", " ").split() if a)
    if not audiences:
        raise SettingsError("NATIVE_IAM_AUDIENCE: must name at least one audience")
    realm = _str(env, "NATIVE_IAM_REALM", d.realm)
    if not realm or any(c in realm for c in '"\\') or not realm.isprintable():
        raise SettingsError(f"NATIVE_IAM_REALM={realm!r}: printable text without quotes or backslashes")
    log_level = _str(env, "NATIVE_IAM_LOG_LEVEL", d.log_level).upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise SettingsError(f"NATIVE_IAM_LOG_LEVEL={log_level!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    feed_token = _secret(env, "NATIVE_IAM_FEED_TOKEN")
    if feed_token and (not feed_token.isascii() or not feed_token.isprintable() or " " in feed_token):
        raise SettingsError("NATIVE_IAM_FEED_TOKEN: must be visible ASCII without spaces")
    return Settings(
        token_url=token_url,
        password_url=_str(env, "NATIVE_IAM_AUTHENTICATION_PASSWORD_URL", ""),
        jwks_url=jwks_url,
        issuer=issuer,
        audiences=audiences,
        authz_listen=_listen(env, "NATIVE_IAM_AUTHZ_LISTEN", d.authz_listen, optional=False),
        oauth_listen=_listen(env, "NATIVE_IAM_OAUTH_LISTEN", d.oauth_listen, optional=True),
        metrics_listen=_listen(env, "NATIVE_IAM_METRICS_LISTEN", d.metrics_listen, optional=True),
        workers=int(_number(env, "NATIVE_IAM_WORKERS", d.workers, minimum=1, integer=True)),
        authz_server=_choice(env, "NATIVE_IAM_AUTHZ_SERVER", d.authz_server, ("sync", "aio")),  # type: ignore[arg-type]
        authz_threads=int(_number(env, "NATIVE_IAM_AUTHZ_THREADS", d.authz_threads, minimum=1, integer=True)),
        feed_max_staleness_s=_number(env, "NATIVE_IAM_FEED_MAX_STALENESS_S", d.feed_max_staleness_s, minimum=0.1),
        feed_stale_policy=_choice(env, "NATIVE_IAM_FEED_STALE_POLICY", d.feed_stale_policy, ("closed", "open")),  # type: ignore[arg-type]
        leeway_s=_number(env, "NATIVE_IAM_LEEWAY_S", d.leeway_s, minimum=0),
        token_header=_header(env, "NATIVE_IAM_TOKEN_HEADER", d.token_header, required=True),
        realm=realm,
        log_level=log_level,
        log_format=_choice(env, "NATIVE_IAM_LOG_FORMAT", d.log_format, ("json", "text")),  # type: ignore[arg-type]
        jwks_max_age_s=_number(env, "NATIVE_IAM_JWKS_MAX_AGE_S", d.jwks_max_age_s, minimum=1),
        jwks_min_refetch_s=_number(env, "NATIVE_IAM_JWKS_MIN_REFETCH_S", d.jwks_min_refetch_s, minimum=0),
        decision_cache_size=int(
            _number(env, "NATIVE_IAM_DECISION_CACHE_SIZE", d.decision_cache_size, minimum=0, integer=True)
        ),
        decision_cache_ttl_s=_number(env, "NATIVE_IAM_DECISION_CACHE_TTL_S", d.decision_cache_ttl_s, minimum=0),
        identity_header=_header(env, "NATIVE_IAM_IDENTITY_HEADER", d.identity_header),
        namespace_header=_header(env, "NATIVE_IAM_NAMESPACE_HEADER", d.namespace_header),
        scopes_header=_header(env, "NATIVE_IAM_SCOPES_HEADER", d.scopes_header),
        jti_header=_header(env, "NATIVE_IAM_JTI_HEADER", d.jti_header),
        strip_token=_bool(env, "NATIVE_IAM_STRIP_TOKEN", d.strip_token),
        forward_timeout_s=_number(env, "NATIVE_IAM_FORWARD_TIMEOUT_S", d.forward_timeout_s, minimum=0.1),
        max_token_bytes=int(_number(env, "NATIVE_IAM_MAX_TOKEN_BYTES", d.max_token_bytes, minimum=256, integer=True)),
        subscriber=_str(env, "NATIVE_IAM_SUBSCRIBER", "") or d.subscriber,
        feed_token=feed_token,
    )
