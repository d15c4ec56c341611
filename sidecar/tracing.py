"""Spans for ext_authz decisions, continuing the caller's W3C trace context.

Envoy passes the request's headers in the CheckRequest; when they carry a ``traceparent`` (the
workload's caller, or Envoy's own tracing, started the trace) the decision becomes a child span of
it, sampled as the caller decided. Checks without one start a trace for
NATIVE_IAM_TRACE_SAMPLE_RATIO of requests (default 0: the sidecar only continues traces).

A span names the decision, never the credential: result, reason, route (method and path without
the query, which may hold a token), HTTP status of a deny. Spans are only built with
SYSTEM_TELEMETRY_EXPORTER_ENDPOINT set; without it ``Authorizer.spans`` is None and both
transports run their untraced path, unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from native_iam.runtime import telemetry

from .verdict import Allow, Denial, Verdict

SPAN_NAME = "native_iam.sidecar/Check"
_TRACEPARENT_LEN = 55  # version 00: 2 + 1 + 32 + 1 + 16 + 1 + 2
_UNSAMPLED = frozenset("02468aceACE")  # last hex digit of the flags with the sampled bit clear
_MAX_PATH = 256

log = logging.getLogger("sidecar.tracing")


class DecisionSpans:
    """Starts and ends the decision spans of both transports (sidecar/ext_authz_grpc.py and
    sidecar/ext_authz_http.py): each hands over the trace headers it received and, at the end,
    the route and the verdict, so a span means the same whichever transport carried the Check."""

    def __init__(self, tracer: trace.Tracer, sample_ratio: float, anonymous: Allow) -> None:
        self._tracer = tracer
        self._roots = sample_ratio > 0  # else a request without traceparent is never traced
        self._anonymous = anonymous  # the anonymous allow verdict (an allow without a token)

    def start(self, headers: Mapping[str, str]) -> trace.Span | None:
        """A recording span for this Check, or None when it is not sampled (the cheap common case)."""
        traceparent = headers.get("traceparent")
        if traceparent is None:
            if not self._roots:
                return None
        elif len(traceparent) == _TRACEPARENT_LEN and traceparent[-1] in _UNSAMPLED:
            # The caller chose not to sample (flags bit 0 clear); parent-based sampling would drop
            # the span anyway: skip parsing and the SDK's non-recording span (most of the cost).
            return None
        caller = telemetry.parent(headers)
        if caller is None and not self._roots:
            return None
        span = self._tracer.start_span(SPAN_NAME, context=caller, kind=trace.SpanKind.SERVER)
        if not span.is_recording():
            return None
        return span

    def end(self, span: trace.Span, method: str, path: str, verdict: Verdict) -> None:
        """Describe the decision on ``span`` and end it; never raises (the answer is already made)."""
        try:
            self._describe(span, method, path, verdict)
        except Exception:
            log.exception("decision span not described")
        finally:
            span.end()

    def _describe(self, span: trace.Span, method: str, path: str, verdict: Verdict) -> None:
        path = path.partition("?")[0].partition("#")[0][:_MAX_PATH]  # a client's path: bounded
        attributes: dict[str, Any] = {"http.request.method": method, "native_iam.route": f"{method} {path}"}
        if verdict.__class__ is Allow:
            attributes["native_iam.result"] = "allow"
            attributes["native_iam.reason"] = "anonymous" if verdict is self._anonymous else "token"
        else:
            denial: Denial = verdict  # type: ignore[assignment]
            reason = denial.metadata.get("deny_reason") or "internal"
            attributes["native_iam.result"] = "deny"
            attributes["native_iam.reason"] = reason
            attributes["http.response.status_code"] = denial.status
            if reason == "internal":
                span.set_status(trace.StatusCode.ERROR, "the authorization service failed")
        span.set_attributes(attributes)


def grpc_trace_headers(http: Any) -> Mapping[str, str]:
    """The trace headers of a CheckRequest's ``attributes.request.http``: its ``headers`` map, or
    those of ``header_map`` when Envoy sends raw headers."""
    if "traceparent" in http.headers or not http.HasField("header_map"):
        return http.headers
    return {
        h.key: h.raw_value.decode("utf-8", "replace") or h.value
        for h in http.header_map.headers
        if h.key in telemetry.TRACE_HEADERS
    }
