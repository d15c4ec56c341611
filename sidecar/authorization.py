"""The ext_authz ``Check`` handler: Envoy's request attributes → ``CheckResponse``.

Reads top to bottom: request path → route requirement → token header → authentication (feed
freshness, decision cache or verification, revocation: sidecar/authenticate.py, shared with the
OAuth facade's CheckAccess) → scopes → response. Decisions always travel in
``CheckResponse.status`` with gRPC OK; a bug inside is caught at the boundary and answered as a
500 deny (reason ``internal``) — never as an allow.

Speed: a cached valid token costs a dict lookup, a set comparison and returning bytes serialized
when the token was first verified. Allowed requests are counted, not logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2
from google.rpc import code_pb2, status_pb2
from opentelemetry import trace

from . import decision, request_path
from .authenticate import Authenticator, Credential, Entry
from .decision import Deny, Principal, Reason
from .decision_cache import DecisionCache
from .keys import KeyStore
from .metrics import Metrics
from .requirements import RequirementError, Resolver, Rule
from .revocations import RevocationCache
from .settings import Settings
from .tracing import DecisionSpans

log = logging.getLogger("sidecar.authorization")

SERVICE = "envoy.service.auth.v3.Authorization"
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_MAX_CACHED_DENIES = 4096


def _header(name: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=name, value=value), append_action=_OVERWRITE)


def _quoted(text: str) -> str:
    # RFC 6750 §3: error_description and scope values exclude '"' and '\'.
    return "".join(c for c in text if c.isprintable() and c not in '"\\' and ord(c) < 0x7F)


class Responses:
    """Builds (and where it can, prebuilds) serialized ``CheckResponse`` messages."""

    def __init__(self, settings: Settings) -> None:
        self._s = settings
        self._identity_headers = [
            h
            for h in (settings.identity_header, settings.namespace_header, settings.scopes_header, settings.jti_header)
            if h
        ]
        anonymous = external_auth_pb2.CheckResponse(status=status_pb2.Status(code=code_pb2.OK))
        # Anonymous routes never forward identity headers a client made up.
        anonymous.ok_response.headers_to_remove.extend(self._identity_headers)
        self.anonymous = anonymous.SerializeToString()
        # Denies repeat (a client retrying, a token lacking a route's scope): serialize each once.
        self._denied: dict[Deny, bytes] = {}

    def allow(self, p: Principal) -> bytes:
        s = self._s
        response = external_auth_pb2.CheckResponse(status=status_pb2.Status(code=code_pb2.OK))
        ok = response.ok_response
        # OVERWRITE: a client-sent header of the same name never reaches the upstream.
        values = (
            (s.identity_header, p.identity),
            (s.namespace_header, p.namespace),
            (s.scopes_header, " ".join(sorted(p.scopes))),
            (s.jti_header, p.jti),
        )
        for name, value in values:
            if not name:
                continue
            if value:
                ok.headers.append(_header(name, value))
            else:
                ok.headers_to_remove.append(name)
        if s.strip_token:
            ok.headers_to_remove.append(s.token_header)
        response.dynamic_metadata.update(
            {"identity": p.identity, "namespace": p.namespace, "scopes": " ".join(sorted(p.scopes)), "jti": p.jti}
        )
        return response.SerializeToString()

    def deny(self, d: Deny) -> bytes:
        cached = self._denied.get(d)
        if cached is None:
            if len(self._denied) >= _MAX_CACHED_DENIES:
                self._denied.clear()  # bounded: jti-specific denies are unbounded in number
            cached = self._denied[d] = self._build_deny(d)
        return cached

    def _build_deny(self, d: Deny) -> bytes:
        outcome = d.outcome
        status, error = outcome.http_status, outcome.error
        challenge = f'Bearer realm="{self._s.realm}"'
        body: dict[str, str] = {}
        if error is not None:
            challenge += f', error="{error}", error_description="{_quoted(d.description)}"'
            body = {"error": error, "error_description": d.description}
            if d.needed:
                challenge += f', scope="{" ".join(d.needed)}"'
                body["scope"] = " ".join(d.needed)
        else:
            body = {"error_description": d.description}
        response = external_auth_pb2.CheckResponse(status=status_pb2.Status(code=outcome.rpc_code))
        denied = response.denied_response
        denied.status.code = status
        denied.body = json.dumps(body, separators=(",", ":"))
        denied.headers.append(_header("content-type", "application/json"))
        denied.headers.append(_header("cache-control", "no-store"))
        if status in (400, 401, 403):
            denied.headers.append(_header("www-authenticate", challenge))
        metadata: dict[str, Any] = {"deny_reason": d.reason.value}
        if d.jti:
            metadata["jti"] = d.jti
        response.dynamic_metadata.update(metadata)
        return response.SerializeToString()


class Authorizer:
    """Decides ``CheckRequest``s: the route and token header here, the token by :class:`Authenticator`."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyStore,
        revocations: RevocationCache,
        metrics: Metrics,
        *,
        cache: DecisionCache | None = None,
        wall_clock: Callable[[], float] = time.time,
        tracer: trace.Tracer | None = None,
        sample_ratio: float = 0.0,
    ) -> None:
        self._metrics = metrics
        self._resolver = Resolver()
        self._responses = Responses(settings)
        self._header = settings.token_header
        credential = Credential.AUTHORIZATION if settings.token_header == "authorization" else Credential.HEADER
        authenticator = Authenticator(
            settings,
            keys,
            revocations,
            credential=credential,
            metrics=metrics,
            render=self._responses.allow,
            cache=cache,
            wall_clock=wall_clock,
        )
        # Bound once: the cached-token path is a handful of attribute loads, each one counts.
        self._authenticate = authenticator.authenticate
        self._authenticate_async = authenticator.authenticate_async
        if tracer is not None:
            # Traced Checks wrap the untraced ones, which stay exactly as fast when tracing is off.
            self._spans = DecisionSpans(tracer, sample_ratio, self._responses.anonymous)
            self._check_sync, self._check_async = self.check_sync, self.check_async
            self.check_sync, self.check_async = self._traced_sync, self._traced_async  # type: ignore[method-assign]

    # ---- the two server flavours differ only in how they wait for an unknown-kid refetch ----

    def check_sync(self, request: Any, context: Any = None) -> bytes:
        started = time.perf_counter()
        try:
            admitted = self._admit(request)
            if admitted.__class__ is bytes:
                response = admitted
            else:
                header, rule = admitted
                response = self._answer(self._authenticate(header), rule)
        except Exception:
            response = self._internal()
        self._metrics.check_seconds.observe(time.perf_counter() - started)
        return response  # type: ignore[return-value]

    async def check_async(self, request: Any, context: Any = None) -> bytes:
        started = time.perf_counter()
        try:
            admitted = self._admit(request)
            if admitted.__class__ is bytes:
                response = admitted
            else:
                header, rule = admitted
                response = self._answer(await self._authenticate_async(header), rule)
        except Exception:
            response = self._internal()
        self._metrics.check_seconds.observe(time.perf_counter() - started)
        return response  # type: ignore[return-value]

    def _traced_sync(self, request: Any, context: Any = None) -> bytes:
        span = self._spans.start(request)
        if span is None:
            return self._check_sync(request, context)
        with trace.use_span(span, end_on_exit=False):
            response = self._check_sync(request, context)
        self._spans.end(span, request, response)
        return response

    async def _traced_async(self, request: Any, context: Any = None) -> bytes:
        span = self._spans.start(request)
        if span is None:
            return await self._check_async(request, context)
        with trace.use_span(span, end_on_exit=False):
            response = await self._check_async(request, context)
        self._spans.end(span, request, response)
        return response

    def _internal(self) -> bytes:
        # Fail closed: a bug is a 500 deny with a reason, never an allow or a gRPC error.
        log.exception("check failed", extra={"reason": Reason.INTERNAL.value})
        return self._deny(Deny(Reason.INTERNAL, "the authorization service failed"))

    def _admit(self, request: Any) -> bytes | tuple[str, Rule]:
        """The answer to a request decided without a token (bad path, invalid or anonymous route,
        no token header); otherwise the token header and the route's rule for this method."""
        attributes = request.attributes
        http = attributes.request.http
        # Envoy chose the route from this path: if it is not normalised, the route (and so the
        # requirement below) may not be the one the workload's handler belongs to.
        path_problem = request_path.problem(http.path)
        if path_problem is not None:
            return self._deny(Deny(Reason.PATH_NOT_NORMALIZED, path_problem))
        try:
            rule = self._resolver.resolve(attributes).for_method(http.method)
        except RequirementError as exc:
            log.error("route requirement invalid", extra={"reason": Reason.ROUTE_INVALID.value, "error": str(exc)})
            return self._deny(Deny(Reason.ROUTE_INVALID, "the route's authorization settings are invalid"))
        if rule.anonymous:
            self._metrics.allow["anonymous"].inc()
            return self._responses.anonymous

        header = http.headers.get(self._header)
        if header is None and http.HasField("header_map"):
            header = _from_header_map(http.header_map, self._header)
        if header is None:
            return self._deny(Deny(Reason.MISSING, "an access token is required"))
        return header, rule

    def _answer(self, result: Entry | Deny, rule: Rule) -> bytes:
        """The authenticated token against the route's rule: the prebuilt allow, or a deny."""
        if result.__class__ is Deny:
            return self._deny(result)  # type: ignore[arg-type]
        principal = result.principal  # type: ignore[union-attr]
        if not rule.satisfied_by(principal.scopes):
            return self._deny(decision.insufficient(principal, rule))  # type: ignore[arg-type]
        self._metrics.allow["token"].inc()
        return result.response  # type: ignore[no-any-return]

    def _deny(self, d: Deny) -> bytes:
        self._metrics.deny[d.reason].inc()
        log.info(
            "deny",
            extra={"reason": d.reason.value, "jti": d.jti or None, "status": d.outcome.http_status},
        )
        return self._responses.deny(d)


def _from_header_map(header_map: Any, name: str) -> str | None:
    """The header from ``header_map`` (Envoy's ``encode_raw_headers: true``); repeats are joined
    with "," as Envoy joins them in ``headers``, so a duplicate token header stays malformed."""
    values = [h.raw_value.decode("utf-8", "replace") or h.value for h in header_map.headers if h.key == name]
    return ",".join(values) if values else None


def _serialize(response: Any) -> bytes:
    return response if response.__class__ is bytes else response.SerializeToString()


def handler(authorizer: Authorizer, *, asynchronous: bool) -> grpc.GenericRpcHandler:
    """The ``envoy.service.auth.v3.Authorization`` service for a grpc (or grpc.aio) server.

    A generic handler rather than the generated servicer: responses are already serialized
    (cached allow responses are reused as bytes), so the serializer passes bytes through.
    """
    behaviour = authorizer.check_async if asynchronous else authorizer.check_sync
    method = grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=external_auth_pb2.CheckRequest.FromString,
        response_serializer=_serialize,
    )
    return grpc.method_handlers_generic_handler(SERVICE, {"Check": method})


def parse_response(data: bytes) -> Any:
    """A serialized CheckResponse as a message (for tests and tools)."""
    return external_auth_pb2.CheckResponse.FromString(data)


__all__ = ["Authorizer", "Responses", "handler", "parse_response"]
