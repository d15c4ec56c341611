"""The ext_authz decision, once for both transports: a :class:`Request` → a :class:`~sidecar.verdict.Verdict`.

Reads top to bottom (:meth:`Authorizer.decide`): request path → route requirement → token header
→ authentication (feed freshness, decision cache or verification, revocation:
sidecar/authenticate.py, shared with the OAuth facade's CheckAccess) → scopes → verdict.

The transports only translate: sidecar/ext_authz_grpc.py (Envoy's ``grpc_service``:
``CheckRequest`` → :class:`Request`, verdict → ``CheckResponse``) and sidecar/ext_authz_http.py
(Envoy's ``http_service``, nginx ``auth_request``: HTTP request → :class:`Request`, verdict → HTTP
response). Each catches a bug at its boundary and answers :meth:`Authorizer.internal` (a 500 deny,
reason ``internal``) — never an allow.

Speed: a cached valid token costs a dict lookup, a set comparison and returning the verdict (and
its encoding) built when the token was first verified. Allowed requests are counted, not logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NamedTuple

from opentelemetry import trace

from . import decision, request_path
from .authenticate import NEED_REFETCH, Authenticator, Credential
from .decision import Deny, Reason
from .decision_cache import DecisionCache
from .keys import KeyStore
from .metrics import Metrics
from .requirements import Requirement, RequirementError, Resolver, RouteUnmatched
from .revocations import RevocationCache
from .route_table_file import RouteTableFile
from .settings import Settings
from .tracing import DecisionSpans
from .verdict import Verdict, Verdicts

log = logging.getLogger("sidecar.authorization")

__all__ = ["NEED_REFETCH", "Authorizer", "Request"]


class Request(NamedTuple):
    """What the decision needs of a request, whichever transport brought it."""

    method: str
    host: str
    #: As the proxy routed on it (query included): checked by sidecar/request_path.py.
    path: str
    #: The token header's value as received (repeats joined with ","), None when absent.
    credential: str | None
    #: The route's requirement as the transport carried it, or why it is invalid.
    requirement: Requirement | RequirementError


class Authorizer:
    """Decides :class:`Request`\\ s: path, route and token header here, the token by :class:`Authenticator`."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyStore,
        revocations: RevocationCache,
        metrics: Metrics,
        *,
        cache: DecisionCache | None = None,
        wall_clock: Callable[[], float] = time.time,
        routes: RouteTableFile | None = None,
        tracer: trace.Tracer | None = None,
        sample_ratio: float = 0.0,
    ) -> None:
        self.metrics = metrics
        self.resolver = Resolver(routes.current if routes is not None else None)
        self.verdicts = Verdicts(settings)
        self.token_header = settings.token_header
        credential = Credential.AUTHORIZATION if settings.token_header == "authorization" else Credential.HEADER
        self.authenticator = Authenticator(
            settings,
            keys,
            revocations,
            credential=credential,
            metrics=metrics,
            render=self.verdicts.allow,
            cache=cache,
            wall_clock=wall_clock,
        )
        # Bound once: the cached-token path is a handful of attribute loads, each one counts.
        self._attempt = self.authenticator.attempt
        self._allowed = metrics.allow["token"]
        self._anonymous = metrics.allow["anonymous"]
        #: Decision spans (sidecar/tracing.py) when tracing is on; the transports start and end
        #: them around :meth:`decide`, and skip even that when this is None.
        self.spans = None if tracer is None else DecisionSpans(tracer, sample_ratio, self.verdicts.anonymous)

    def decide(self, r: Request, refetched: bool = False) -> Verdict | object:
        """The verdict on ``r``; :data:`NEED_REFETCH` when the token's ``kid`` is unknown and no
        refetch was tried yet: the transport then waits (:meth:`Authenticator.wait_for_keys` or
        its async twin, as its server allows) and decides again with ``refetched=True``."""
        # Envoy chose the route from this path: if it is not normalised, the route (and so the
        # requirement below) may not be the one the workload's handler belongs to.
        path_problem = request_path.problem(r.path)
        if path_problem is not None:
            return self.deny(Deny(Reason.PATH_NOT_NORMALIZED, path_problem))
        requirement = r.requirement
        if isinstance(requirement, RouteUnmatched):
            return self.deny(Deny(Reason.ROUTE_UNMATCHED, "no route table rule matches this request"))
        if isinstance(requirement, RequirementError):
            log.error(
                "route requirement invalid", extra={"reason": Reason.ROUTE_INVALID.value, "error": str(requirement)}
            )
            return self.deny(Deny(Reason.ROUTE_INVALID, "the route's authorization settings are invalid"))
        rule = requirement.for_method(r.method)
        if rule.anonymous:
            self._anonymous.inc()
            return self.verdicts.anonymous
        if r.credential is None:
            return self.deny(Deny(Reason.MISSING, "an access token is required"))

        result = self._attempt(r.credential, refetched)
        if result is NEED_REFETCH:
            return result
        if result.__class__ is Deny:
            return self.deny(result)  # type: ignore[arg-type]
        principal = result.principal  # type: ignore[union-attr]
        if not rule.satisfied_by(principal.scopes):
            return self.deny(decision.insufficient(principal, rule))  # type: ignore[arg-type]
        self._allowed.inc()
        return result.response  # type: ignore[union-attr,no-any-return]

    def deny(self, d: Deny) -> Verdict:
        """Count, log and answer a deny (also for a transport's own refusals, e.g. a malformed request)."""
        self.metrics.deny[d.reason].inc()
        log.info(
            "deny",
            extra={"reason": d.reason.value, "jti": d.jti or None, "status": d.outcome.http_status},
        )
        return self.verdicts.deny(d)

    def internal(self) -> Verdict:
        """Fail closed: a bug is a 500 deny with a reason, never an allow or a transport error.
        Call from an ``except`` block (the traceback is logged)."""
        log.exception("check failed", extra={"reason": Reason.INTERNAL.value})
        return self.deny(Deny(Reason.INTERNAL, "the authorization service failed"))
