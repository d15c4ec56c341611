"""native_iam.oauth.v1.Feed over gRPC: GetJwks, and WatchRevocations (served by
:class:`token_service.feed.FeedHub`) behind the feed credential (a static feed token, or an
access token with scope ``native-iam.feed``)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message
from opentelemetry import trace

from native_iam.claims import FEED_SCOPE
from native_iam.oauth.v1 import feed_pb2
from token_service.access import verify_access_token
from token_service.api.grpc.edge import Streaming, bearer_token, stream, unary
from token_service.core import Core
from token_service.errors import GrantError, TokenExpired, Unauthenticated
from token_service.metrics import Metrics

__all__ = ["FEED_SERVICE", "FeedCredentials", "feed_handlers"]

log = logging.getLogger(__name__)

FEED_SERVICE = "native_iam.oauth.v1.Feed"


class FeedServicer:
    """native_iam.oauth.v1.Feed: the JWKS here; WatchRevocations in :mod:`token_service.feed.hub`."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def GetJwks(
        self, request: feed_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> feed_pb2.GetJwksResponse:
        return feed_pb2.GetJwksResponse(
            jwks_json=self.core.keys.jwks_json(), max_age_s=self.core.settings.jwks_max_age_s
        )


class FeedCredentials:
    """Who may watch the revocation feed: callers presenting one of the NATIVE_IAM_FEED_TOKEN
    tokens, or an access token this service issued, alive (verified as CheckAccess verifies:
    :func:`token_service.access.verify_access_token`), for its own audience
    (NATIVE_IAM_AUDIENCE) and carrying the scope ``native-iam.feed``.

    The feed names identities and jtis, so it is not public (GetJwks is: public keys only). A
    static token from a Kubernetes Secret shared with the sidecars is the simplest credential to
    operate; an access token lets each sidecar use its pod's own identity instead (a workload
    token, sidecar/workload_tokens.py), revocable like any token, with no shared secret. Static
    tokens are compared as SHA-256 digests in constant time, every configured token each time
    (no early exit).
    """

    def __init__(self, core: Core, tokens: Sequence[str]) -> None:
        self._core = core
        self._digests = [hashlib.sha256(t.encode("utf-8")).digest() for t in tokens]

    async def check(self, context: grpc.aio.ServicerContext) -> str | None:
        """Return when the caller presented an accepted credential: None for a static feed token,
        the access token itself (judged again while the stream lasts); else raise Unauthenticated."""
        try:
            token = bearer_token(context, "feed token")
        except Unauthenticated as exc:
            raise _refused(context, exc.message, exc.message) from None
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        # A list, not a generator: every digest is compared, whichever matches.
        if any([hmac.compare_digest(presented, d) for d in self._digests]):
            return None
        if token.count(".") != 2:  # not a JWT: not worth a verification
            raise _refused(context, "not an accepted feed token")
        try:
            claims = await verify_access_token(self._core, token)
        except GrantError as exc:
            raise _refused(context, f"access token refused: {exc.status}") from None
        if FEED_SCOPE not in claims.scopes:
            raise _refused(context, f"access token without scope {FEED_SCOPE}")
        if self._core.settings.audience not in claims.audience:
            raise _refused(context, "access token for another audience")
        return token

    async def still_valid(self, context: grpc.aio.ServicerContext, token: str) -> None:
        """Raise Unauthenticated when the stream's access token has expired or was revoked since
        (a cache hit while nothing changed: :mod:`token_service.check_cache`)."""
        try:
            await verify_access_token(self._core, token)
        except TokenExpired:
            log.info("feed subscriber's access token expired; ending its stream", extra={"peer": context.peer()})
            raise Unauthenticated("the feed credential expired; reconnect with a new access token") from None
        except GrantError as exc:
            log.warning(
                "feed subscriber's access token revoked; ending its stream",
                extra={"peer": context.peer(), "reason": exc.status},
            )
            raise Unauthenticated("the feed credential was revoked") from None


_REFUSED = (
    "the feed credential is not accepted (NATIVE_IAM_FEED_TOKEN, or an access token for this service"
    f" with scope {FEED_SCOPE})"
)


def _refused(context: grpc.aio.ServicerContext, reason: str, message: str = _REFUSED) -> Unauthenticated:
    """The refusal to raise, logged with its reason (the caller's message does not say which check failed)."""
    log.warning("feed subscriber refused", extra={"peer": context.peer(), "reason": reason})
    return Unauthenticated(message)


#: How often (at most) a stream's access token is judged again, at its next message.
_RECHECK_S = 1.0


def _authenticated(watch: Streaming, credentials: FeedCredentials, clock: Callable[[], float]) -> Streaming:
    """``watch`` behind the feed credential, checked before the request is looked at. A stream
    opened with an access token ends (UNAUTHENTICATED) at its first message (a heartbeat at the
    latest) after the token expired or was revoked: the subscriber reconnects with a fresh one, and
    a revoked client loses the feed."""

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Message]:
        token = await credentials.check(context)
        checked = clock()
        async for message in watch(request, context):
            if token is not None and clock() - checked >= _RECHECK_S:
                await credentials.still_valid(context, token)
                checked = clock()
            yield message

    return guarded


def feed_handlers(
    core: Core, metrics: Metrics | None, watch: Streaming | None, tracer: trace.Tracer | None = None
) -> grpc.GenericRpcHandler:
    s = FeedServicer(core)
    handlers = {
        "GetJwks": unary(
            FEED_SERVICE, "GetJwks", feed_pb2.GetJwksRequest, feed_pb2.GetJwksResponse, s.GetJwks, metrics, tracer
        )
    }
    if watch is not None:
        if not core.settings.feed_tokens:
            log.warning(
                "NATIVE_IAM_FEED_TOKEN is not set: WatchRevocations accepts only access tokens with scope"
                f" {FEED_SCOPE} (workload tokens)"
            )
        handlers["WatchRevocations"] = stream(
            FEED_SERVICE,
            "WatchRevocations",
            feed_pb2.WatchRevocationsRequest,
            feed_pb2.WatchRevocationsResponse,
            _authenticated(watch, FeedCredentials(core, core.settings.feed_tokens), core.clock),
            metrics,
            tracer,
        )
    return grpc.method_handlers_generic_handler(FEED_SERVICE, handlers)
