"""Workload tokens: access tokens the sidecar gets for its workload with the pod's identity.

The pod's projected service-account token (NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE, re-read at
every fetch so a kubelet rotation is picked up) is the RFC 7523 §2.2 client assertion of a
``client_credentials`` grant at the token service's HTTP token endpoint (NATIVE_IAM_TOKEN_ENDPOINT),
with ``resource`` = the audience (RFC 8707). Answers are cached per (audience, scopes) until
shortly before expiry: renewed at 80% of the lifetime or 60 s before ``exp``, whichever comes
first, but never before half of it. Concurrent requests for one key share one upstream request
(single-flight, across the asyncio facade and the feed thread alike: a ``concurrent.futures``
future per key). When a renewal finds the token service unreachable, the cached token is served
while it is still valid; a refusal (``invalid_client``, …) drops it.

Served as ``native_iam.oauth.v1.WorkloadTokens/GetToken`` (proto/native_iam/oauth/v1/
workload.proto documents the error codes) and used by the revocation feed as its credential
(:class:`FeedCredential`). No token and no service-account token is ever logged.

The HTTP client is urllib (as the JWKS fetcher): one small POST per token lifetime does not
justify a dependency. Redirects are not followed and proxies are not used, so the assertion goes
to the configured endpoint and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import jwt

from native_iam import claims
from native_iam import scopes as scope_rules
from native_iam.limits import MAX_AUDIENCE_BYTES
from native_iam.oauth.v1 import workload_pb2

from .metrics import Metrics
from .settings import Settings

log = logging.getLogger("sidecar.workload_tokens")

GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SERVICE = "native_iam.oauth.v1.WorkloadTokens"
#: Distinct (audience, scopes) kept; the least recently used goes first. A workload calls a
#: handful of services; the bound only stops a buggy one from growing the sidecar without limit.
MAX_CACHED = 256
_MAX_SA_TOKEN_BYTES = 16 * 1024
_MAX_ANSWER_BYTES = 64 * 1024
#: A stale token served through an outage must still have this long to live.
_MIN_REMAINING_S = 5.0

#: RFC 6749 §5.2 (and RFC 8707 ``invalid_target``) error codes → gRPC code and metric result.
_REFUSALS: dict[str, tuple[grpc.StatusCode, str]] = {
    "invalid_client": (grpc.StatusCode.UNAUTHENTICATED, "invalid_client"),
    "invalid_request": (grpc.StatusCode.INVALID_ARGUMENT, "invalid_request"),
    "unauthorized_client": (grpc.StatusCode.PERMISSION_DENIED, "denied"),
    "invalid_scope": (grpc.StatusCode.PERMISSION_DENIED, "denied"),
    "invalid_target": (grpc.StatusCode.PERMISSION_DENIED, "denied"),
    "invalid_grant": (grpc.StatusCode.PERMISSION_DENIED, "denied"),
    "access_denied": (grpc.StatusCode.PERMISSION_DENIED, "denied"),
    "unsupported_grant_type": (grpc.StatusCode.FAILED_PRECONDITION, "unsupported"),
}

Key = tuple[str, tuple[str, ...]]


class WorkloadTokenError(Exception):
    """A token could not be had: the gRPC code to answer with, a message without secrets."""

    def __init__(self, code: grpc.StatusCode, message: str, *, result: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.result = result

    @property
    def transient(self) -> bool:
        return self.code == grpc.StatusCode.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str = ""
    audience: str = ""
    scopes: tuple[str, ...] = ()
    #: Wall-clock expiry (seconds since the epoch), for the answer.
    expires_at: float = 0.0
    #: Monotonic instants: renew from ``renew_at``; unusable from ``expires_mono``.
    renew_at: float = 0.0
    expires_mono: float = 0.0
    #: What the revocation cache needs to say whether the token is dead (from its payload).
    revocation: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never the token
        return f"Token(audience={self.audience!r}, scopes={self.scopes!r}, expires_at={self.expires_at})"


def revocation_subject(access_token: str) -> dict[str, Any]:
    """The fields :meth:`sidecar.revocations.RevocationCache.lookup` takes, read from the token's
    header and payload without verifying it: the token came from the token service over the
    channel it was asked on, and this only decides whether to stop serving it. {} if unreadable."""
    try:
        header = jwt.get_unverified_header(access_token)
        payload = jwt.decode(access_token, options={"verify_signature": False})
        return {
            "jti": str(payload.get("jti", "")),
            "identity": str(payload.get("sub", "")),
            "namespace": str(payload.get(claims.NAMESPACE, "")),
            "kid": str(header.get("kid", "")),
            "iat": float(payload.get("iat", 0)),
            "client_id": str(payload.get(claims.CLIENT_ID, "")),
            "principal": str(payload.get(claims.SUB_KIND, claims.IDENTITY_PRINCIPAL)),
        }
    except (jwt.PyJWTError, TypeError, ValueError):
        return {}


def revoked_in(revocations: Any) -> Callable[[Token], bool]:
    """``WorkloadTokens(revoked=…)`` for the sidecar's :class:`~sidecar.revocations.RevocationCache`."""

    def revoked(token: Token) -> bool:
        return bool(token.revocation) and revocations.lookup(**token.revocation) is not None

    return revoked


def renew_after(lifetime_s: float) -> float:
    """Seconds after issue when a token of this lifetime is renewed: 80% of it or 60 s before the
    end, whichever comes first, but not before half of it (a short token is still reused)."""
    return max(min(0.8 * lifetime_s, lifetime_s - 60.0), 0.5 * lifetime_s)


def check_audience(audience: str) -> str | None:
    """Why ``audience`` is not acceptable, or None."""
    if not audience:
        return "audience: required"
    if len(audience.encode("utf-8")) > MAX_AUDIENCE_BYTES:
        return f"audience: at most {MAX_AUDIENCE_BYTES} bytes"
    if not all("\x21" <= c <= "\x7e" for c in audience):
        return "audience: visible ASCII without spaces"
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError: the assertion is never re-sent elsewhere


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


class WorkloadTokens:
    """The token cache with single-flight fetches; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        revoked: Callable[[Token], bool] = lambda token: False,
    ) -> None:
        # Whether the sidecar's own revocation cache names a cached token dead (its client was
        # disabled, say): then it is fetched again rather than handed out until its renewal.
        self._revoked = revoked
        self._endpoint = settings.token_endpoint
        self._sa_file = settings.service_account_token_file
        self._timeout_s = settings.forward_timeout_s
        self._metrics = metrics
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[Key, Token] = OrderedDict()
        self._inflight: dict[Key, futures.Future[Token]] = {}
        self._executor = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="workload-token")

    # ---- asking ----

    def request(self, audience: str, scopes: tuple[str, ...], *, renew: bool = False) -> futures.Future[Token]:
        """A future of the token for (audience, normalized scopes): done at once from the cache,
        else the one in-flight fetch for that key. ``renew`` skips the cache (a credential refused)."""
        key = (audience, scopes)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and not renew and self._clock() < cached.renew_at and not self._revoked(cached):
                self._cache.move_to_end(key)
                if self._metrics is not None:
                    self._metrics.workload_token_hits.inc()
                done: futures.Future[Token] = futures.Future()
                done.set_result(cached)
                return done
            flight = self._inflight.get(key)
            if flight is None:
                # Submitted under the lock: the fetch removes itself under it, so never before this line.
                flight = self._executor.submit(self._fetch, key)
                self._inflight[key] = flight
            return flight

    async def get(self, audience: str, scopes: tuple[str, ...]) -> Token:
        # Shielded: a caller that gives up must not cancel the fetch others are waiting on.
        return await asyncio.shield(asyncio.wrap_future(self.request(audience, scopes)))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---- fetching (executor threads) ----

    def _fetch(self, key: Key) -> Token:
        audience, scopes = key
        token: Token | None = None
        try:
            token = self._fetch_upstream(audience, scopes)
            self._count("ok")
            log.info(
                "workload token fetched",
                extra={"audience": audience, "scopes": " ".join(token.scopes), "expires_at": int(token.expires_at)},
            )
            return token
        except WorkloadTokenError as exc:
            self._count(exc.result)
            log.warning(
                "workload token refused" if not exc.transient else "workload token fetch failed",
                extra={"audience": audience, "result": exc.result, "detail": exc.message},
            )
            with self._lock:
                stale = self._cache.get(key)
            if exc.transient and stale is not None and stale.expires_mono - self._clock() >= _MIN_REMAINING_S:
                token = stale  # through an outage: the old token while it lives (left due for renewal)
                return stale
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)
                if token is not None:
                    self._cache[key] = token
                    self._cache.move_to_end(key)
                    while len(self._cache) > MAX_CACHED:
                        self._cache.popitem(last=False)
                else:
                    self._cache.pop(key, None)  # refused, or expired through an outage

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.workload_token_fetches.labels(result).inc()

    def _assertion(self) -> str:
        if not self._endpoint:
            raise WorkloadTokenError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "workload tokens are off: NATIVE_IAM_TOKEN_ENDPOINT is not set",
                result="not_configured",
            )
        try:
            with open(self._sa_file, "rb") as f:
                raw = f.read(_MAX_SA_TOKEN_BYTES + 1)
        except OSError as exc:
            raise WorkloadTokenError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the service-account token NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE={self._sa_file} cannot be read:"
                f" {type(exc).__name__}",
                result="not_configured",
            ) from None
        assertion = raw.decode("ascii", "replace").strip()
        if not assertion or len(raw) > _MAX_SA_TOKEN_BYTES or not all("\x21" <= c <= "\x7e" for c in assertion):
            raise WorkloadTokenError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE={self._sa_file} does not hold a token",
                result="not_configured",
            )
        return assertion

    def _fetch_upstream(self, audience: str, scopes: tuple[str, ...]) -> Token:
        form = {
            "grant_type": GRANT_TYPE,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self._assertion(),
            "resource": audience,
        }
        if scopes:
            form["scope"] = scope_rules.format_scopes(scopes)
        request = urllib.request.Request(  # noqa: S310 (http(s) checked in settings)
            self._endpoint,
            data=urllib.parse.urlencode(form).encode("ascii"),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            method="POST",
        )
        started = self._clock()
        try:
            with _OPENER.open(request, timeout=self._timeout_s) as response:
                status, body = response.status, response.read(_MAX_ANSWER_BYTES)
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read(_MAX_ANSWER_BYTES)
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, bad URLs
            raise _unavailable(f"cannot be reached ({type(exc).__name__})") from None
        answer = _json(body)
        if status == 200:
            return self._token(answer, audience, scopes, issued=started)
        if status >= 500 or status == 429:
            raise _unavailable(f"answered HTTP {status}")
        error = answer.get("error") if answer is not None else None
        if not isinstance(error, str) or not error:
            raise _unavailable(f"answered HTTP {status} without an OAuth error")
        code, result = _REFUSALS.get(error, (grpc.StatusCode.PERMISSION_DENIED, "denied"))
        description = answer.get("error_description") if answer is not None else None
        detail = _printable(description) if isinstance(description, str) else ""
        raise WorkloadTokenError(
            code,
            f"the token service refused: {_printable(error)}" + (f": {detail}" if detail else ""),
            result=result,
        )

    def _token(self, answer: dict[str, Any] | None, audience: str, scopes: tuple[str, ...], *, issued: float) -> Token:
        if answer is None:
            raise _unavailable("answered 200 without a JSON object")
        access_token, token_type, expires_in = (
            answer.get("access_token"),
            answer.get("token_type"),
            answer.get("expires_in"),
        )
        if not isinstance(access_token, str) or not access_token or not access_token.isascii():
            raise _unavailable("answered without an access_token")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise _unavailable("answered a token_type other than Bearer")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
            raise _unavailable("answered without a positive expires_in")
        granted = answer.get("scope")
        try:
            token_scopes = scope_rules.parse(granted) if isinstance(granted, str) else scopes
        except scope_rules.ScopeError:
            raise _unavailable("answered a malformed scope") from None
        lifetime = float(expires_in)
        return Token(
            access_token=access_token,
            audience=audience,
            scopes=token_scopes,
            expires_at=self._wall() + lifetime,
            renew_at=issued + renew_after(lifetime),
            expires_mono=issued + lifetime,
            revocation=revocation_subject(access_token),
        )


def _unavailable(what: str) -> WorkloadTokenError:
    return WorkloadTokenError(
        grpc.StatusCode.UNAVAILABLE, f"the token service's token endpoint {what}; retry later", result="unavailable"
    )


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _printable(text: str) -> str:
    """A server-sent string fit for a message and a log line: printable, at most 200 characters."""
    return "".join(c if c.isprintable() else "?" for c in text[:200])


class FeedCredential:
    """The revocation feed's bearer: a workload token for the token service's own audience with
    the feed scope. Blocking (the feed runs on its own thread)."""

    def __init__(self, tokens: WorkloadTokens, audience: str, *, timeout_s: float) -> None:
        self._tokens = tokens
        self._audience = audience
        self._timeout_s = timeout_s

    def bearer(self, *, renew: bool = False) -> tuple[str, float]:
        """``(access token, monotonic instant to renew it)``; raises WorkloadTokenError."""
        future = self._tokens.request(self._audience, (claims.FEED_SCOPE,), renew=renew)
        try:
            token = future.result(self._timeout_s + 1.0)
        except futures.TimeoutError:
            raise _unavailable("did not answer in time") from None
        return token.access_token, token.renew_at


# ---- the gRPC service ----


class WorkloadTokensServicer:
    def __init__(self, tokens: WorkloadTokens, *, wall_clock: Callable[[], float] = time.time) -> None:
        self._tokens = tokens
        self._wall = wall_clock

    async def GetToken(
        self, request: workload_pb2.GetTokenRequest, context: grpc.aio.ServicerContext
    ) -> workload_pb2.GetTokenResponse:
        if problem := check_audience(request.audience):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        try:
            wanted = scope_rules.normalize(request.scopes)
        except scope_rules.ScopeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"scopes: {exc}")
        try:
            token = await self._tokens.get(request.audience, wanted)
        except WorkloadTokenError as exc:
            await context.abort(exc.code, exc.message)
        return workload_pb2.GetTokenResponse(
            access_token=token.access_token,
            token_type="Bearer",
            expires_in=max(1, int(token.expires_at - self._wall())),
            expires_at=int(token.expires_at),
            scopes=list(token.scopes),
            audience=token.audience,
        )


def methods(servicer: WorkloadTokensServicer) -> dict[str, tuple[Any, Any, Any]]:
    """The service's methods for :func:`sidecar.oauth_facade.parsed_handler`."""
    return {
        "GetToken": (workload_pb2.GetTokenRequest, workload_pb2.GetTokenResponse, servicer.GetToken),
    }


def readable(path: str) -> bool:
    """Whether the service-account token file is there (decides the feed credential at start)."""
    return bool(path) and Path(path).is_file()
