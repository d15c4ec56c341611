"""The sidecar's Prometheus metrics (prefix ``native_iam_sidecar_``).

Labelled children used on the request path are bound once here, so counting costs an attribute
load and an increment. With several worker processes, prometheus-client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set by the CLI) merges their values; each gauge says how.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .decision import Reason

ALLOW_REASONS = ("token", "anonymous")
#: Results of a workload-token fetch (sidecar/workload_tokens.py).
WORKLOAD_TOKEN_RESULTS = (
    "ok",
    "invalid_client",
    "invalid_request",
    "denied",
    "unsupported",
    "not_configured",
    "unavailable",
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw = {"registry": registry} if registry is not None else {}
        self.decisions = Counter(
            "native_iam_sidecar_decisions",
            "Authorization decisions by result (allow|deny) and low-cardinality reason.",
            ["result", "reason"],
            **kw,
        )
        self.check_seconds = Histogram(
            "native_iam_sidecar_check_duration_seconds",
            "Time spent deciding one ext_authz Check inside the sidecar (excludes gRPC transport).",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5),
            **kw,
        )
        self.cache_lookups = Counter(
            "native_iam_sidecar_decision_cache_lookups",
            "Decision-cache lookups by result (hit|miss).",
            ["result"],
            **kw,
        )
        self.jwks_fetches = Counter("native_iam_sidecar_jwks_fetches", "JWKS fetches attempted.", **kw)
        self.jwks_fetch_failures = Counter("native_iam_sidecar_jwks_fetch_failures", "JWKS fetches that failed.", **kw)
        self.jwks_age = Gauge(
            "native_iam_sidecar_jwks_age_seconds",
            "Seconds since the key set was last fetched successfully.",
            multiprocess_mode="max",
            **kw,
        )
        self.feed_connected = Gauge(
            "native_iam_sidecar_feed_connected",
            "1 while the revocation feed stream is open, else 0.",
            multiprocess_mode="min",
            **kw,
        )
        self.feed_lag = Gauge(
            "native_iam_sidecar_feed_lag_seconds",
            "Seconds since the last message (event or heartbeat) from the revocation feed.",
            multiprocess_mode="max",
            **kw,
        )
        self.revocations = Gauge(
            "native_iam_sidecar_revocation_cache_entries",
            "Entries in the revocation cache by kind (token|identity|namespace|key|client).",
            ["kind"],
            multiprocess_mode="max",
            **kw,
        )
        self.ready = Gauge(
            "native_iam_sidecar_ready",
            "1 when keys are loaded and the revocation feed has synced, else 0.",
            multiprocess_mode="min",
            **kw,
        )
        self.workload_token_fetches = Counter(
            "native_iam_sidecar_workload_token_fetches",
            "Workload-token requests to the token service's token endpoint by result (ok|invalid_client|"
            "invalid_request|denied|unsupported|not_configured|unavailable).",
            ["result"],
            **kw,
        )
        self.workload_token_hits = Counter(
            "native_iam_sidecar_workload_token_cache_hits",
            "Workload tokens answered from the sidecar's cache (GetToken and the feed credential).",
            **kw,
        )
        self.route_table_valid = Gauge(
            "native_iam_sidecar_route_table_valid",
            "0 while the route table file (NATIVE_IAM_ROUTE_TABLE_FILE) is invalid and the last good table"
            " is in force; 1 otherwise (also without a table).",
            multiprocess_mode="min",
            **kw,
        )
        self.route_table_valid.set(1)
        self.route_table_rules = Gauge(
            "native_iam_sidecar_route_table_rules",
            "Rules in the route table in force (0 without a table).",
            multiprocess_mode="max",
            **kw,
        )
        self.route_table_reloads = Counter(
            "native_iam_sidecar_route_table_reloads",
            "Reloads of the changed route table file by result (ok|invalid).",
            ["result"],
            **kw,
        )
        for result in ("ok", "invalid"):
            self.route_table_reloads.labels(result)
        # Bound children for the request path.
        self.allow = {r: self.decisions.labels("allow", r) for r in ALLOW_REASONS}
        self.deny = {r: self.decisions.labels("deny", r.value) for r in Reason}
        self.hit = self.cache_lookups.labels("hit")
        self.miss = self.cache_lookups.labels("miss")
        for kind in ("token", "identity", "namespace", "key", "client"):
            self.revocations.labels(kind)
        for result in WORKLOAD_TOKEN_RESULTS:
            self.workload_token_fetches.labels(result)

    def fetched(self, ok: bool) -> None:
        self.jwks_fetches.inc()
        if not ok:
            self.jwks_fetch_failures.inc()
