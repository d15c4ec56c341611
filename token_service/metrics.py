"""Prometheus metrics of the token service, served on NATIVE_IAM_METRICS_LISTEN at /metrics.

Names follow Prometheus conventions (base units, ``_total`` counters, ``_seconds``
histograms) and are checked with ``promtool check metrics`` in the tests. Each service instance
has its own registry, so tests can run several in one process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from native_iam.runtime.listen import MetricsServer, serve_metrics
from token_service.errors import Unavailable

__all__ = ["Metrics", "http_connections_cut_counter", "http_requests_counter"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def http_requests_counter(registry: CollectorRegistry) -> Counter:
    """The OAuth HTTP endpoints' counter (created with their app, in the service's registry)."""
    return Counter(
        "native_iam_http_oauth_requests_total",
        "OAuth HTTP requests by endpoint, outcome (ok or RFC error code) and deny reason.",
        ["endpoint", "outcome", "reason"],
        registry=registry,
    )


def http_connections_cut_counter(registry: CollectorRegistry) -> Counter:
    """Connections the HTTP server closed (created with the server, in the service's registry)."""
    counter = Counter(
        "native_iam_http_connections_cut_total",
        "HTTP connections closed by the server: header_timeout, header_too_large, body_timeout, capacity.",
        ["reason"],
        registry=registry,
    )
    _zeroed(counter, "header_timeout", "header_too_large", "body_timeout", "capacity")
    return counter


def _zeroed(counter: Counter, *values: str) -> None:
    """Export 0 for each label value before the first event: an error series that appears only
    once something breaks cannot be graphed or rated over the time before it (dashboard, alerts)."""
    for value in values:
        counter.labels(value)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.grants = Counter(
            "native_iam_grants_total",
            "Token grant outcomes, by grant (password, refresh_token, authorization_code, client_credentials,"
            " token_exchange) and seed status (OK or the refusal reason).",
            ["grant", "status"],
            registry=r,
        )
        self.grant_denials = Counter(
            "native_iam_grant_denials_total",
            "Refused grants by grant and internal reason (unknown_identity, wrong_password, locked_out, ...).",
            ["grant", "reason"],
            registry=r,
        )
        self.checks = Counter(
            "native_iam_access_checks_total", "CheckAccess outcomes by seed status.", ["status"], registry=r
        )
        self.rpc_latency = Histogram(
            "native_iam_grpc_server_handling_seconds",
            "Time to handle a gRPC call, by method and gRPC status code.",
            ["method", "code"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.feed_subscribers = Gauge(
            "native_iam_feed_subscribers",
            "Open WatchRevocations streams on this replica.",
            registry=r,
            multiprocess_mode="livesum",  # NATIVE_IAM_WORKERS > 1: the sum over live workers
        )
        self.feed_events = Counter(
            "native_iam_feed_revocations_sent_total",
            "Revocations sent to feed subscribers, by message kind (snapshot, events).",
            ["kind"],
            registry=r,
        )
        self.db_errors = Counter(
            "native_iam_db_errors_total",
            "Database failures seen by request handlers, by kind (unavailable, other).",
            ["kind"],
            registry=r,
        )
        self.cache_errors = Counter(
            "native_iam_cache_errors_total",
            "Redis (SYSTEM_CACHE_URL) failures, by operation (lockout, short_lived, publish, subscribe) and kind"
            " (unavailable: connection error or timeout; other).",
            ["operation", "kind"],
            registry=r,
        )
        self.cache_latency = Histogram(
            "native_iam_cache_seconds",
            "Time of one Redis (SYSTEM_CACHE_URL) operation, retries included, by operation.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.admin_denials = Counter(
            "native_iam_admin_denials_total",
            "Admin API calls refused, by reason (unauthenticated, permission_denied).",
            ["reason"],
            registry=r,
        )
        self.client_assertions = Counter(
            "native_iam_client_assertions_total",
            "Kubernetes service-account client assertions (RFC 7523), by outcome: ok or the refusal reason"
            " (untrusted_issuer, algorithm, unknown_kid, signature, jwks_unavailable, audience, expired,"
            " not_yet_valid, issued_in_future, lifetime, kubernetes_claims, unknown_service_account,"
            " client_mismatch, not_registered, replayed, malformed).",
            ["outcome"],
            registry=r,
        )
        _zeroed(self.feed_events, "snapshot", "events")
        _zeroed(self.client_assertions, "ok")
        _zeroed(self.db_errors, "unavailable", "other")
        _zeroed(self.admin_denials, "unauthenticated", "permission_denied")
        self._server: MetricsServer | None = None

    def count_failure(self, exc: BaseException) -> None:
        """Count ``exc`` in native_iam_db_errors_total if it is a database failure: the one rule for
        every transport's edge (an unreachable database is Unavailable; any other SQLAlchemy error
        escaped a handler)."""
        if isinstance(exc, Unavailable):
            if exc.dependency == "database":  # a cache failure is counted by the cache client
                self.db_errors.labels("unavailable").inc()
        elif "sqlalchemy" in type(exc).__module__:
            self.db_errors.labels("other").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, address: str, setting: str) -> int:
        """Serve /metrics on ``address`` (HOST:PORT, port 0 = any); return the bound port."""
        self._server = serve_metrics(address, setting, self.registry)
        return self._server.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
