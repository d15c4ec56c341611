"""The sidecar's configuration: one frozen object built from the environment at start-up.

Every field has its default, its environment variable and what it means beside it
(``docs/configuration.md`` is rendered from them: ``./dev docs``). :func:`from_env` is the only place
that reads the environment; a bad value raises :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from native_iam.envdoc import setting
from native_iam.limits import MAX_TOKEN_BYTES
from native_iam.runtime.env import Env, EnvError, Renamed
from native_iam.runtime.logs import LOG_FORMATS, LOG_LEVELS

StalePolicy = Literal["closed", "open"]


#: A bad value: the message starts with the variable (the one error class of both roles).
SettingsError = EnvError


@dataclass(frozen=True, slots=True)
class Settings:
    token_url: str = setting(
        "NATIVE_IAM_TOKEN_URL",
        "token service gRPC (`host:port`): Feed (keys, revocations) and forwarded grants",
        "native-iam-token:80",
    )
    password_url: str = setting(
        "NATIVE_IAM_AUTHENTICATION_PASSWORD_URL",
        "seed variable: where `CreateTokenWithPassword` is forwarded; unset = `NATIVE_IAM_TOKEN_URL`",
        "",
    )
    jwks_url: str = setting(
        "NATIVE_IAM_JWKS_URL",
        "HTTP(S) JWKS to use instead of `Feed.GetJwks` (`Cache-Control: max-age` honoured)",
        "",
    )
    issuer: str = setting(
        "NATIVE_IAM_ISSUER", "required `iss`, exactly as the token service's", "http://localhost:8080"
    )
    audiences: tuple[str, ...] = setting(
        "NATIVE_IAM_ACCEPTED_AUDIENCES",
        "accepted `aud` values (comma- or space-separated): a token passes when its `aud` contains any of them",
        ("native-iam",),
        was="NATIVE_IAM_AUDIENCE",
        why_renamed="the token service's variable of this name is the audience it issues",
    )
    authz_listen: str = setting(
        "NATIVE_IAM_AUTHZ_LISTEN", "ext_authz + gRPC health (what Envoy calls)", "127.0.0.1:9191"
    )
    authz_http_listen: str = setting(
        "NATIVE_IAM_AUTHZ_HTTP_LISTEN",
        "ext_authz over HTTP (Envoy `http_service`, nginx `auth_request`; docs/sidecar.md), beside the gRPC one;"
        " empty, `off` or `none` disables (e.g. `127.0.0.1:9193` enables it)",
        "",
    )
    oauth_listen: str = setting(
        "NATIVE_IAM_OAUTH_LISTEN", "the OAuth API for the workload; empty, `off` or `none` disables", "127.0.0.1:9192"
    )
    metrics_listen: str = setting(
        "NATIVE_IAM_METRICS_LISTEN",
        "Prometheus `/metrics`; empty, `off` or `none` disables (as in the token service)",
        "0.0.0.0:9465",
    )
    workers: int = setting(
        "NATIVE_IAM_WORKERS",
        "processes sharing the ports (`SO_REUSEPORT`, fixed ports), each with its own caches and feed; as the token"
        " service's, but at least 1 (no \"one per CPU\": the sidecar shares its pod's CPUs with the workload)",
        1,
    )
    # bench/sidecar_servers.py measured sync with 2-3 threads cheapest per Check.
    authz_server: Literal["sync", "aio"] = setting(
        "NATIVE_IAM_AUTHZ_SERVER",
        "ext_authz server: `sync` (grpcio, small thread pool) or `aio` (`grpc.aio`)",
        "sync",
    )
    # Decisions hold the GIL, so more threads only add contention.
    authz_threads: int = setting("NATIVE_IAM_AUTHZ_THREADS", "threads of the sync ext_authz server", 3)
    feed_max_staleness_s: float = setting(
        "NATIVE_IAM_FEED_MAX_STALENESS_S",
        "feed silence (no event or heartbeat) after which the stale policy applies",
        30.0,
    )
    feed_stale_policy: StalePolicy = setting(  # noqa: RUF009 - a dataclasses.field, like the others
        "NATIVE_IAM_FEED_STALE_POLICY",
        "`closed`: deny 503 `feed_stale`; `open`: keep deciding from the caches",
        "closed",
    )
    leeway_s: float = setting("NATIVE_IAM_LEEWAY_S", "clock-skew leeway for `exp` and `nbf`", 30.0)
    token_header: str = setting(
        "NATIVE_IAM_TOKEN_HEADER",
        "header carrying the token, lower-case (`Bearer` scheme required for `authorization`, optional otherwise)",
        "authorization",
    )
    realm: str = setting("NATIVE_IAM_REALM", "`realm` in `WWW-Authenticate`", "native-iam")
    log_level: str = setting("NATIVE_IAM_LOG_LEVEL", "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`", "INFO")
    log_format: Literal["json", "text"] = setting(
        "NATIVE_IAM_LOG_FORMAT",
        "as the token service's: the same schema, masking and escaping (`native_iam/runtime/logs.py`)",
        "json",
    )
    jwks_max_staleness_s: float = setting(
        "NATIVE_IAM_JWKS_MAX_STALENESS_S",
        "last-known-good keys verify at most this long after the last successful fetch (through an issuer outage)",
        86400.0,
        was="NATIVE_IAM_JWKS_MAX_AGE_S",
        why_renamed="the token service's variable of this name is the JWKS `Cache-Control` max-age",
    )
    jwks_min_refetch_s: float = setting(
        "NATIVE_IAM_JWKS_MIN_REFETCH_S", "at most one unknown-`kid` refetch per this many seconds", 5.0
    )
    decision_cache_size: int = setting("NATIVE_IAM_DECISION_CACHE_SIZE", "decision-cache entries; 0 disables", 100_000)
    decision_cache_ttl_s: float = setting(
        "NATIVE_IAM_DECISION_CACHE_TTL_S",
        "longest life of a cached decision (never past the token's `exp`)",
        300.0,
    )
    # Upstream headers set on an allowed request (lower-case).
    identity_header: str = setting(
        "NATIVE_IAM_IDENTITY_HEADER",
        "upstream header with the identity (`sub`); empty disables",
        "x-native-iam-identity",
    )
    namespace_header: str = setting(
        "NATIVE_IAM_NAMESPACE_HEADER", "upstream header with the namespace; empty disables", "x-native-iam-namespace"
    )
    scopes_header: str = setting(
        "NATIVE_IAM_SCOPES_HEADER", "upstream header with the token's scopes; empty disables", "x-native-iam-scopes"
    )
    jti_header: str = setting(
        "NATIVE_IAM_JTI_HEADER", "upstream header with the token's `jti`; empty disables", "x-native-iam-jti"
    )
    client_header: str = setting(
        "NATIVE_IAM_CLIENT_HEADER",
        "upstream header with the token's OAuth client (`client_id`); for a client's own token"
        " (client_credentials) it names the caller, and the identity and namespace headers are"
        " removed; empty disables",
        "x-native-iam-client",
    )
    strip_token: bool = setting(
        "NATIVE_IAM_STRIP_TOKEN", "remove the token header before the request reaches the workload", False
    )
    forward_timeout_s: float = setting(
        "NATIVE_IAM_FORWARD_TIMEOUT_S", "deadline of calls forwarded to the token service", 5.0
    )
    max_token_bytes: int = setting(
        "NATIVE_IAM_MAX_TOKEN_BYTES", "longer tokens are denied as `malformed`", MAX_TOKEN_BYTES
    )
    subscriber: str = setting(
        "NATIVE_IAM_SUBSCRIBER",
        "name sent to the feed (pod name), for the token service's logs",
        default_factory=lambda: os.uname().nodename,
        shown_default="host name",
    )
    # The token the token service accepts; never printed.
    feed_token: str = setting(
        "NATIVE_IAM_FEED_TOKEN",
        "the feed token sent with `WatchRevocations` (or `NATIVE_IAM_FEED_TOKEN_FILE`); without an accepted one the"
        " sidecar never becomes ready",
        "",
        repr=False,
    )
    # Workload tokens (sidecar/workload_tokens.py): the pod's service-account token buys access tokens.
    token_endpoint: str = setting(
        "NATIVE_IAM_TOKEN_ENDPOINT",
        "the token service's HTTP token endpoint, where `WorkloadTokens.GetToken` (and the feed credential, see"
        " `NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE`) get access tokens with the `client_credentials` grant;"
        " empty, `off` or `none` disables workload tokens",
        "http://native-iam-token:8080/oauth2/token",
    )
    # A path, not a secret: the file is re-read at every fetch, so a kubelet rotation is picked up.
    service_account_token_file: str = setting(
        "NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE",
        "the pod's projected service-account token, sent as the RFC 7523 client assertion (re-read at every"
        " fetch, never logged). When it exists at start and `NATIVE_IAM_FEED_TOKEN` is unset, the feed"
        " subscription uses a workload token with scope `native-iam.feed` instead of a static feed token",
        "/var/run/secrets/tokens/native-iam",
    )
    token_service_audience: str = setting(
        "NATIVE_IAM_TOKEN_SERVICE_AUDIENCE",
        "the `resource` asked for the feed's workload token: the token service's `NATIVE_IAM_AUDIENCE`",
        "native-iam",
    )
    route_table_file: str = setting(
        "NATIVE_IAM_ROUTE_TABLE_FILE",
        "YAML route table (docs/route-table.md) for proxies that send no route requirement (Istio, Envoy"
        " `http_service`): reloaded when it changes, an invalid file at start refuses to start; unset = no table",
        "",
    )
    telemetry_endpoint: str = setting(
        "SYSTEM_TELEMETRY_EXPORTER_ENDPOINT",
        "OTLP/gRPC endpoint for traces (e.g. `otel-collector:4317`), as the token service's; unset = no tracing",
        "",
    )
    trace_sample_ratio: float = setting(
        "NATIVE_IAM_TRACE_SAMPLE_RATIO",
        "share (0 to 1) of Checks without a caller's `traceparent` that start a trace; a caller's `traceparent`"
        " decides for its own requests (its sampled flag is followed)",
        0.0,
    )
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


def _off(value: str) -> str:
    return "" if value.lower() in ("off", "none") else value


def _token_endpoint(value: str) -> str | None:
    if value.lower() in ("off", "none"):
        return None
    return _jwks_url(value)


def _ratio(env: Env, name: str, default: float) -> float:
    value = env.number(name, default, low=0)
    if value > 1:
        raise SettingsError(name, f"a share between 0 and 1, got {value:g}")
    return value


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
        authz_http_listen=env.listen("NATIVE_IAM_AUTHZ_HTTP_LISTEN", d.authz_http_listen, optional=True),
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
        client_header=_header(env, "NATIVE_IAM_CLIENT_HEADER", d.client_header),
        strip_token=env.boolean("NATIVE_IAM_STRIP_TOKEN", d.strip_token),
        forward_timeout_s=env.number("NATIVE_IAM_FORWARD_TIMEOUT_S", d.forward_timeout_s, low=0.1),
        max_token_bytes=env.integer("NATIVE_IAM_MAX_TOKEN_BYTES", d.max_token_bytes, low=256),
        subscriber=env.text("NATIVE_IAM_SUBSCRIBER", d.subscriber),
        feed_token=_feed_token(env),
        token_endpoint=_off(
            env.text("NATIVE_IAM_TOKEN_ENDPOINT", d.token_endpoint, check=_token_endpoint, blank="off")
        ),
        service_account_token_file=env.text(
            "NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE", d.service_account_token_file, blank="off"
        ),
        token_service_audience=env.text("NATIVE_IAM_TOKEN_SERVICE_AUDIENCE", d.token_service_audience, blank="error"),
        route_table_file=env.text("NATIVE_IAM_ROUTE_TABLE_FILE", ""),
        telemetry_endpoint=env.text("SYSTEM_TELEMETRY_EXPORTER_ENDPOINT", ""),
        trace_sample_ratio=_ratio(env, "NATIVE_IAM_TRACE_SAMPLE_RATIO", d.trace_sample_ratio),
        renamed=tuple(env.renames),
    )
