"""The sidecar's configuration: one frozen object built from the environment at start-up.

Every field has its default and unit beside it. :func:`from_env` is the only place that reads the
environment; a bad value raises :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from native_iam.runtime.env import Env, EnvError, Renamed
from native_iam.runtime.logs import LOG_FORMATS, LOG_LEVELS

StalePolicy = Literal["closed", "open"]


#: A bad value: the message starts with the variable (the one error class of both roles).
SettingsError = EnvError


@dataclass(frozen=True, slots=True)
class Settings:
    # Where the token service's gRPC API (Feed + OAuth) lives; host:port.
    token_url: str = "native-iam-token:80"
    # Seed variable: where CreateTokenWithPassword is forwarded; defaults to token_url.
    password_url: str = ""
    # Optional HTTP(S) JWKS URL used instead of Feed.GetJwks.
    jwks_url: str = ""
    issuer: str = "http://localhost:8080"
    # NATIVE_IAM_ACCEPTED_AUDIENCES (was NATIVE_IAM_AUDIENCE, the token service's issued audience):
    # a token passes when its `aud` contains any of them.
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
    # NATIVE_IAM_JWKS_MAX_STALENESS_S (was NATIVE_IAM_JWKS_MAX_AGE_S, the token service's JWKS
    # Cache-Control max-age): last-known-good keys keep verifying through an issuer outage for at
    # most this long after the last successful fetch (seconds).
    jwks_max_staleness_s: float = 86400.0
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
    max_token_bytes: int = 8192
    # Name sent to the feed as `subscriber` (pod name).
    subscriber: str = field(default_factory=lambda: os.uname().nodename)
    # The bearer token WatchRevocations requires (NATIVE_IAM_FEED_TOKEN, or the file named by
    # NATIVE_IAM_FEED_TOKEN_FILE): the one the token service accepts. Empty: the feed refuses
    # this sidecar, which then never becomes ready. Never printed.
    feed_token: str = field(default="", repr=False)
    # Deprecated variable names read in place of their new ones: cli.py warns once logging is up.
    renamed: tuple[Renamed, ...] = field(default=(), compare=False)

    @property
    def forward_password_url(self) -> str:
        return self.password_url or self.token_url


def _header(env: Env, name: str, default: str, *, required: bool = False) -> str:
    value = env.text(name, default, blank="error" if required else "off").lower()
    if value and not all(c.isalnum() or c in "-_" for c in value):
        raise SettingsError(name, f"not an HTTP header name, got {value!r}")
    return value


def _jwks_url(value: str) -> str | None:
    return None if value.startswith(("http://", "https://")) else f"expected an http:// or https:// URL, got {value!r}"


def _realm(value: str) -> str | None:
    if any(c in value for c in '"\\') or not value.isprintable():
        return f"printable text without quotes or backslashes, got {value!r}"
    return None


def _audiences(env: Env) -> tuple[str, ...]:
    name = env.renamed("NATIVE_IAM_ACCEPTED_AUDIENCES", "NATIVE_IAM_AUDIENCE")
    audiences = tuple(env.text(name, "native-iam", blank="error").replace(",", " ").split())
    if not audiences:
        raise SettingsError(name, "must name at least one audience")
    return audiences


def _feed_token(env: Env) -> str:
    token = (env.secret("NATIVE_IAM_FEED_TOKEN") or "").strip()
    if token and (not token.isascii() or not token.isprintable() or " " in token):
        raise SettingsError("NATIVE_IAM_FEED_TOKEN", "must be visible ASCII without spaces")
    return token


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``environ`` (default: ``os.environ``)."""
    env = Env(environ)
    d = Settings()
    audiences = _audiences(env)
    jwks_max_staleness = env.renamed("NATIVE_IAM_JWKS_MAX_STALENESS_S", "NATIVE_IAM_JWKS_MAX_AGE_S")
    return Settings(
        token_url=env.text("NATIVE_IAM_TOKEN_URL", d.token_url, blank="error"),
        password_url=env.text("NATIVE_IAM_AUTHENTICATION_PASSWORD_URL", ""),
        jwks_url=env.text("NATIVE_IAM_JWKS_URL", "", check=_jwks_url),
        issuer=env.text("NATIVE_IAM_ISSUER", d.issuer, blank="error"),
        audiences=audiences,
        authz_listen=env.listen("NATIVE_IAM_AUTHZ_LISTEN", d.authz_listen),
        oauth_listen=env.listen("NATIVE_IAM_OAUTH_LISTEN", d.oauth_listen, optional=True),
        metrics_listen=env.listen("NATIVE_IAM_METRICS_LISTEN", d.metrics_listen, optional=True),
        workers=env.workers("NATIVE_IAM_WORKERS", d.workers, per_cpu=False),
        authz_server=env.choice("NATIVE_IAM_AUTHZ_SERVER", d.authz_server, ("sync", "aio")),  # type: ignore[arg-type]
        authz_threads=env.integer("NATIVE_IAM_AUTHZ_THREADS", d.authz_threads, low=1),
        feed_max_staleness_s=env.number("NATIVE_IAM_FEED_MAX_STALENESS_S", d.feed_max_staleness_s, low=0.1),
        feed_stale_policy=env.choice("NATIVE_IAM_FEED_STALE_POLICY", d.feed_stale_policy, ("closed", "open")),  # type: ignore[arg-type]
        leeway_s=env.number("NATIVE_IAM_LEEWAY_S", d.leeway_s, low=0),
        token_header=_header(env, "NATIVE_IAM_TOKEN_HEADER", d.token_header, required=True),
        realm=env.text("NATIVE_IAM_REALM", d.realm, check=_realm, blank="error"),
        log_level=env.choice("NATIVE_IAM_LOG_LEVEL", d.log_level, LOG_LEVELS).upper(),
        log_format=env.choice("NATIVE_IAM_LOG_FORMAT", d.log_format, LOG_FORMATS),  # type: ignore[arg-type]
        jwks_max_staleness_s=env.number(jwks_max_staleness, d.jwks_max_staleness_s, low=1),
        jwks_min_refetch_s=env.number("NATIVE_IAM_JWKS_MIN_REFETCH_S", d.jwks_min_refetch_s, low=0),
        decision_cache_size=env.integer("NATIVE_IAM_DECISION_CACHE_SIZE", d.decision_cache_size, low=0),
        decision_cache_ttl_s=env.number("NATIVE_IAM_DECISION_CACHE_TTL_S", d.decision_cache_ttl_s, low=0),
        identity_header=_header(env, "NATIVE_IAM_IDENTITY_HEADER", d.identity_header),
        namespace_header=_header(env, "NATIVE_IAM_NAMESPACE_HEADER", d.namespace_header),
        scopes_header=_header(env, "NATIVE_IAM_SCOPES_HEADER", d.scopes_header),
        jti_header=_header(env, "NATIVE_IAM_JTI_HEADER", d.jti_header),
        strip_token=env.boolean("NATIVE_IAM_STRIP_TOKEN", d.strip_token),
        forward_timeout_s=env.number("NATIVE_IAM_FORWARD_TIMEOUT_S", d.forward_timeout_s, low=0.1),
        max_token_bytes=env.integer("NATIVE_IAM_MAX_TOKEN_BYTES", d.max_token_bytes, low=256),
        subscriber=env.text("NATIVE_IAM_SUBSCRIBER", d.subscriber),
        feed_token=_feed_token(env),
        renamed=tuple(env.renames),
    )
