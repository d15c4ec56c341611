"""The panels of the Grafana dashboard, as data: rendered to JSON by :mod:`tools.dashboard`.

Each :class:`Panel` has a title, the on-call question it answers (its description in Grafana) and
PromQL targets. To draw a new metric, add a target to a panel (or a panel to a row) here and run
``./dev docs``; a target reading a ``native_iam_*`` metric the code does not export is left out
of the rendering until the code exports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# The template variables, in every selector.
SEL = 'job=~"$job", namespace=~"$namespace", pod=~"$pod"'
RATE = "$__rate_interval"
# Envoy's cluster for the sidecar: native_iam_sidecar (examples/envoy), native_iam_authz (deploy/k8s).
_AUTHZ_CLUSTER = 'envoy_cluster_name=~"native_iam.*"'

# Exported metrics deliberately not drawn (each with why); every other one must be on a panel.
NOT_ON_DASHBOARD: Mapping[str, str] = {
    "native_iam_sidecar_jwks_fetches_total": "the denominator only; failures are what on-call looks at",
}


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    question: str  # the on-call question this panel answers: its description
    targets: tuple[Target, ...]
    unit: str = "short"
    width: int = 12
    stack: bool = False
    thresholds: tuple[tuple[str, float | None], ...] = field(default=(("green", None),))


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def _s(metric: str, extra: str = "") -> str:
    """``metric{job=~"$job", …, extra}``."""
    return f"{metric}{{{SEL}{', ' + extra if extra else ''}}}"


def _rate(metric: str, by: str, extra: str = "") -> str:
    return f"sum by ({by}) (rate({_s(metric, extra)}[{RATE}]))"


def _quantile(q: float, histogram: str, by: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({_s(histogram + '_bucket')}[{RATE}])))"


SIDECAR = Row(
    "Sidecar (ext_authz)",
    (
        Panel(
            "Decisions by result and reason",
            "Are requests being denied, and why? A jump in one deny reason names the cause "
            "(expired: clients not refreshing; unknown_kid: a key rotation not picked up; feed_stale: "
            "the revocation feed is down; route_invalid: an Envoy configuration mistake).",
            (Target(_rate("native_iam_sidecar_decisions_total", "result, reason"), "{{result}} {{reason}}"),),
            unit="reqps",
            stack=True,
        ),
        Panel(
            "Deny ratio",
            "What share of requests is denied right now? Compare with NativeIamDenyRateSpike "
            "(more than 25% and three times the hourly baseline).",
            (
                Target(
                    _rate("native_iam_sidecar_decisions_total", "namespace", 'result="deny"')
                    + " / "
                    + _rate("native_iam_sidecar_decisions_total", "namespace"),
                    "{{namespace}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Check latency (p50, p99)",
            "Is the sidecar slowing requests down? Time to decide one Check inside the sidecar, "
            "without the gRPC transport; a cache hit is microseconds, a verification well under a millisecond.",
            (
                Target(_quantile(0.5, "native_iam_sidecar_check_duration_seconds"), "p50"),
                Target(_quantile(0.99, "native_iam_sidecar_check_duration_seconds"), "p99"),
            ),
            unit="s",
        ),
        Panel(
            "Decision cache hit ratio",
            "Are tokens verified again and again? A falling hit ratio means more signature "
            "checks (CPU): many new tokens, or a cache too small for the traffic.",
            (
                Target(
                    _rate("native_iam_sidecar_decision_cache_lookups_total", "pod", 'result="hit"')
                    + " / "
                    + _rate("native_iam_sidecar_decision_cache_lookups_total", "pod"),
                    "{{pod}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Revocation feed lag",
            "Do revocations still reach the sidecars? Seconds since the last event or heartbeat; "
            "over 30 s the sidecar answers 503 feed_stale (NativeIamFeedStale). -1: never synced.",
            (Target(f"max by (namespace, pod) ({_s('native_iam_sidecar_feed_lag_seconds')})", "{{pod}}"),),
            unit="s",
            thresholds=(("green", None), ("red", 30.0)),
        ),
        Panel(
            "Revocation feed connected",
            "Which sidecars have lost their stream to the token service (0)? (NativeIamFeedDisconnected)",
            (Target(f"min by (namespace, pod) ({_s('native_iam_sidecar_feed_connected')})", "{{pod}}"),),
            thresholds=(("red", None), ("green", 1.0)),
        ),
        Panel(
            "Key age",
            "When did each sidecar last refresh the token service's signing keys? Over an hour: a "
            "key rotation will make it deny new tokens as unknown_kid (NativeIamJwksKeysOld).",
            (Target(f"max by (namespace, pod) ({_s('native_iam_sidecar_jwks_age_seconds')})", "{{pod}}"),),
            unit="s",
            thresholds=(("green", None), ("red", 3600.0)),
        ),
        Panel(
            "JWKS fetch failures",
            "Can the sidecars reach the token service for keys? Failed key fetches per second.",
            (Target(_rate("native_iam_sidecar_jwks_fetch_failures_total", "namespace, pod"), "{{pod}}"),),
            unit="reqps",
        ),
        Panel(
            "Ready sidecars",
            "Which sidecars are not ready (keys not loaded or feed not synced), so Envoy's checks fail?",
            (Target(f"min by (namespace, pod) ({_s('native_iam_sidecar_ready')})", "{{pod}}"),),
            thresholds=(("red", None), ("green", 1.0)),
        ),
        Panel(
            "Route table valid",
            "Did a sidecar reject its changed route table (0) and keep deciding by the last good one? "
            "(NativeIamRouteTableInvalid; the log line names the file and rule line.)",
            (Target(f"min by (namespace, pod) ({_s('native_iam_sidecar_route_table_valid')})", "{{pod}}"),),
            thresholds=(("red", None), ("green", 1.0)),
            width=8,
        ),
        Panel(
            "Route table rules",
            "Do all sidecars of a workload decide by the same table? Rules in force per pod (0: no table).",
            (Target(f"max by (namespace, pod) ({_s('native_iam_sidecar_route_table_rules')})", "{{pod}}"),),
            width=8,
        ),
        Panel(
            "Route table reloads",
            "Was the changed route table loaded (ok) or refused (invalid)?",
            (Target(_rate("native_iam_sidecar_route_table_reloads_total", "result"), "{{result}}"),),
            unit="reqps",
            width=8,
        ),
        Panel(
            "Revocation cache entries",
            "How many revocations does each sidecar hold, by kind? A sidecar far below its peers missed events.",
            (Target(f"max by (kind) ({_s('native_iam_sidecar_revocation_cache_entries')})", "{{kind}}"),),
        ),
        Panel(
            "Workload tokens",
            "Do workloads get their tokens (WorkloadTokens.GetToken, the feed's workload token)? Fetches "
            "from the token service by result (invalid_client: a service account not trusted or its client "
            "disabled; unavailable: the token endpoint is down) and answers from the sidecar's cache.",
            (
                Target(_rate("native_iam_sidecar_workload_token_fetches_total", "result"), "fetch {{result}}"),
                Target(f"sum (rate({_s('native_iam_sidecar_workload_token_cache_hits_total')}[{RATE}]))", "cache hit"),
            ),
            unit="reqps",
        ),
        Panel(
            "Envoy's view of ext_authz",
            "Does Envoy get answers from the sidecar? ok/denied are the sidecar's decisions per route "
            "cluster; unreachable counts failed connections and timeouts to the sidecar's cluster "
            "(native_iam_*), each answered 403 by Envoy (fail closed).",
            (
                Target(_rate("envoy_cluster_ext_authz_ok", "envoy_cluster_name"), "ok {{envoy_cluster_name}}"),
                Target(_rate("envoy_cluster_ext_authz_denied", "envoy_cluster_name"), "denied {{envoy_cluster_name}}"),
                Target(
                    _rate("envoy_cluster_upstream_cx_connect_fail", "envoy_cluster_name", _AUTHZ_CLUSTER)
                    + " + "
                    + _rate("envoy_cluster_upstream_rq_timeout", "envoy_cluster_name", _AUTHZ_CLUSTER),
                    "unreachable {{envoy_cluster_name}}",
                ),
            ),
            unit="reqps",
            width=24,
        ),
    ),
)

TOKEN_SERVICE = Row(
    "Token service",
    (
        Panel(
            "Grants by status",
            "Are tokens being issued? Password and refresh grants per second by outcome (gRPC and HTTP together).",
            (Target(_rate("native_iam_grants_total", "grant, status"), "{{grant}} {{status}}"),),
            unit="reqps",
            stack=True,
        ),
        Panel(
            "Grant denials by reason",
            "Why are grants refused? wrong_password or unknown_identity spikes: a misconfigured client or "
            "credential stuffing; locked_out: lockouts; refresh_token_reuse: a stolen refresh token.",
            (Target(_rate("native_iam_grant_denials_total", "grant, reason"), "{{grant}} {{reason}}"),),
            unit="reqps",
            stack=True,
        ),
        Panel(
            "Service-account logins by outcome",
            "Can workloads log in with their Kubernetes service-account tokens? A refusal reason names the "
            "cause (audience: the projected token's audience is wrong; unknown_service_account: no mapping in "
            "the cluster-issuer trust file; jwks_unavailable: the cluster's keys cannot be fetched; replayed: "
            "a single-use assertion was presented twice).",
            (Target(_rate("native_iam_client_assertions_total", "outcome"), "{{outcome}}"),),
            unit="reqps",
            stack=True,
        ),
        Panel(
            "gRPC latency by method (p50, p99)",
            "Which token-service method is slow? (A WatchRevocations stream is timed over its whole life.)",
            (
                Target(_quantile(0.5, "native_iam_grpc_server_handling_seconds", "method"), "p50 {{method}}"),
                Target(_quantile(0.99, "native_iam_grpc_server_handling_seconds", "method"), "p99 {{method}}"),
            ),
            unit="s",
        ),
        Panel(
            "gRPC calls by status code",
            "Is the token service failing calls? INTERNAL/UNAVAILABLE/UNKNOWN over 5% fires "
            "NativeIamTokenServiceErrors; business refusals travel as OK.",
            (Target(_rate("native_iam_grpc_server_handling_seconds_count", "code"), "{{code}}"),),
            unit="reqps",
            stack=True,
        ),
        Panel(
            "Database and cache errors",
            "Is the database (or Redis, SYSTEM_CACHE_URL) failing the token service? unavailable: cannot "
            "reach it (NativeIamTokenServiceDatabaseErrors, NativeIamTokenServiceCacheErrors: password "
            "grants are refused meanwhile); other: a query failed.",
            (
                Target(_rate("native_iam_db_errors_total", "kind"), "database {{kind}}"),
                Target(_rate("native_iam_cache_errors_total", "operation, kind"), "cache {{operation}} {{kind}}"),
            ),
            unit="reqps",
        ),
        Panel(
            "Redis latency by operation (p50, p99)",
            "Is Redis (SYSTEM_CACHE_URL) slow? One call per lockout step, short-lived value or revocation "
            "publish, retries included; a call never outlives NATIVE_IAM_CACHE_* bounds. Empty without Redis.",
            (
                Target(_quantile(0.5, "native_iam_cache_seconds", "operation"), "p50 {{operation}}"),
                Target(_quantile(0.99, "native_iam_cache_seconds", "operation"), "p99 {{operation}}"),
            ),
            unit="s",
        ),
        Panel(
            "Revocation fan-out",
            "Do revocations reach the sidecars? Revocation messages sent to feed subscribers per second "
            "(snapshot on connect, events after) and the open feed streams per replica.",
            (
                Target(_rate("native_iam_feed_revocations_sent_total", "kind"), "sent {{kind}}"),
                Target(f"sum by (pod) ({_s('native_iam_feed_subscribers')})", "subscribers {{pod}}"),
            ),
        ),
        Panel(
            "CheckAccess outcomes",
            "What does the token service answer workloads that check tokens with it directly?",
            (Target(_rate("native_iam_access_checks_total", "status"), "{{status}}"),),
            unit="reqps",
            stack=True,
        ),
        Panel(
            "OAuth HTTP requests",
            "Which OAuth HTTP endpoint fails, with which RFC error? (ok is success.)",
            (Target(_rate("native_iam_http_oauth_requests_total", "endpoint, outcome"), "{{endpoint}} {{outcome}}"),),
            unit="reqps",
        ),
        Panel(
            "HTTP connections cut",
            "Is the HTTP server shedding slow or excess clients? (header/body timeouts, oversized "
            "headers, NATIVE_IAM_HTTP_MAX_CONNECTIONS)",
            (Target(_rate("native_iam_http_connections_cut_total", "reason"), "{{reason}}"),),
            unit="reqps",
        ),
        Panel(
            "Admin API refusals",
            "Is someone calling the admin API without a valid admin token?",
            (Target(_rate("native_iam_admin_denials_total", "reason"), "{{reason}}"),),
            unit="reqps",
        ),
    ),
)

ROWS = (SIDECAR, TOKEN_SERVICE)
