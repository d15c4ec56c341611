"""The ext_authz ``Check`` handler: Envoy's request attributes → ``CheckResponse``.

Reads top to bottom: request path → route requirement → bearer token → feed freshness → decision cache or
verification → revocation → scopes → response. Decisions always travel in
``CheckResponse.status`` with gRPC OK; a bug inside is caught at the boundary and answered as a
500 deny (reason ``internal``) — never as an allow.

Speed: a cached valid token costs a dict lookup, a set comparison and returning bytes serialized
when the token was first verified. Allowed requests are counted, not logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2
from google.rpc import code_pb2, status_pb2

from . import decision, request_path
from .decision import Deny, Policy, Principal, Reason
from .decision_cache import DecisionCache
from .keys import KeyStore
from .metrics import Metrics
from .requirements import RequirementError, Resolver
from .revocations import RevocationCache
from .settings import Settings

log = logging.getLogger("sidecar.authorization")

SERVICE = "envoy.service.auth.v3.Authorization"
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
# Envoy gives the whole Check 0.5 s in the example config; a JWKS fetch on the same network takes
# milliseconds. Waiting longer would only turn a deny into an Envoy timeout.
_REFETCH_WAIT_S = 0.3
_NEED_REFETCH = object()
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
    """Decides ``CheckRequest``s from the key store, the revocation cache and the decision cache."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyStore,
        revocations: RevocationCache,
        metrics: Metrics,
        *,
        cache: DecisionCache | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._s = settings
        self._keys = keys
        self._revocations = revocations
        self._metrics = metrics
        self._cache = cache or DecisionCache(
            max_entries=settings.decision_cache_size, ttl_s=settings.decision_cache_ttl_s
        )
        self._now = wall_clock
        self._resolver = Resolver()
        self._responses = Responses(settings)
        self._policy = Policy(settings.issuer, settings.audiences, settings.leeway_s, settings.max_token_bytes)
        self._header = settings.token_header
        self._require_scheme = settings.token_header == "authorization"
        self._open_when_stale = settings.feed_stale_policy == "open"

    # ---- the two server flavours share _check; only the unknown-kid wait differs ----

    def check_sync(self, request: Any, context: Any = None) -> bytes:
        started = time.perf_counter()
        response = self._guarded(request, False)
        if response is _NEED_REFETCH:
            try:
                self._keys.refetch().result(timeout=_REFETCH_WAIT_S)
            except Exception:  # timeout or fetch error: decide with what we have
                log.debug("jwks refetch wait failed")
            response = self._guarded(request, True)
        self._metrics.check_seconds.observe(time.perf_counter() - started)
        return response  # type: ignore[return-value]

    async def check_async(self, request: Any, context: Any = None) -> bytes:
        started = time.perf_counter()
        response = self._guarded(request, False)
        if response is _NEED_REFETCH:
            try:
                await asyncio.wait_for(asyncio.wrap_future(self._keys.refetch()), _REFETCH_WAIT_S)
            except Exception:
                log.debug("jwks refetch wait failed")
            response = self._guarded(request, True)
        self._metrics.check_seconds.observe(time.perf_counter() - started)
        return response  # type: ignore[return-value]

    def _guarded(self, request: Any, refetched: bool) -> Any:
        try:
            return self._check(request, refetched)
        except Exception:
            # Fail closed: a bug is a 500 deny with a reason, never an allow or a gRPC error.
            log.exception("check failed", extra={"reason": Reason.INTERNAL.value})
            return self._deny(Deny(Reason.INTERNAL, "the authorization service failed"))

    def _check(self, request: Any, refetched: bool) -> Any:
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

        revocations = self._revocations
        if not revocations.fresh() and not (self._open_when_stale and revocations.synced):
            return self._deny(Deny(Reason.FEED_STALE, "the revocation feed is stale; retry later"))

        # Read the epoch before verifying: a revocation applied meanwhile moves it, so the entry
        # stored below can never outlive that revocation. The cache is keyed by the header value
        # itself (it holds nothing but the token), so a hit skips even the header parsing.
        keys = self._keys
        epoch = keys.generation + revocations.generation
        # Keys past their maximum age void cached allows too (verification then says why).
        entry = self._cache.get(header, epoch) if keys.usable() is not None else None
        if entry is not None:
            self._metrics.hit.inc()
            principal = entry.principal
            response = entry.response
        else:
            self._metrics.miss.inc()
            token = decision.extract_token(
                header, require_scheme=self._require_scheme, max_bytes=self._s.max_token_bytes
            )
            if token is None:
                return self._deny(Deny(Reason.MISSING, "an access token is required"))
            if isinstance(token, Deny):
                return self._deny(token)
            now = self._now()
            verified = decision.verify(token, keys.usable(), self._policy, now, keys.retired)
            if isinstance(verified, Deny):
                if verified.reason is Reason.UNKNOWN_KID and not refetched:
                    return _NEED_REFETCH
                return self._deny(verified)
            principal = verified
            deny = decision.revoked(
                principal,
                revocations.lookup(
                    jti=principal.jti,
                    identity=principal.identity,
                    namespace=principal.namespace,
                    kid=principal.kid,
                    iat=principal.iat,
                ),
            )
            if deny is not None:
                return self._deny(deny)
            response = self._responses.allow(principal)
            self._cache.put(header, principal, epoch, response, now)

        if not rule.satisfied_by(principal.scopes):
            return self._deny(decision.insufficient(principal, rule))  # type: ignore[arg-type]
        self._metrics.allow["token"].inc()
        return response

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
