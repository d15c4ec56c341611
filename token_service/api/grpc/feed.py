"""native_iam.oauth.v1.Feed over gRPC: GetJwks, and WatchRevocations (served by
:class:`token_service.feed.FeedHub`) behind the feed credential."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message
from opentelemetry import trace

from native_iam.oauth.v1 import feed_pb2
from token_service.api.grpc.edge import Streaming, bearer_token, stream, unary
from token_service.core import Core
from token_service.errors import Unauthenticated
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
    """Who may watch the revocation feed: callers presenting one of the NATIVE_IAM_FEED_TOKEN tokens.

    The feed names identities and jtis, so it is not public (GetJwks is: public keys only). A
    static token from a Kubernetes Secret shared with the sidecars is the simplest credential to
    operate: no client registration, no token expiry to track, no dependency of the feed on the
    database; several tokens may be accepted at once, for a rotation. Compared as SHA-256 digests
    in constant time, every configured token each time (no early exit).
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        self._digests = [hashlib.sha256(t.encode("utf-8")).digest() for t in tokens]

    def check(self, context: grpc.aio.ServicerContext) -> None:
        """Return when the caller presented an accepted feed token, else raise Unauthenticated."""
        presented = hashlib.sha256(bearer_token(context, "feed token").encode("utf-8")).digest()
        # A list, not a generator: every digest is compared, whichever matches.
        if not any([hmac.compare_digest(presented, d) for d in self._digests]):
            raise Unauthenticated("the feed token is not accepted (NATIVE_IAM_FEED_TOKEN)")


def _authenticated(watch: Streaming, credentials: FeedCredentials) -> Streaming:
    """``watch`` behind the feed credential, checked before the request is looked at."""

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Message]:
        try:
            credentials.check(context)
        except Unauthenticated as exc:
            log.warning("feed subscriber refused", extra={"peer": context.peer(), "detail": exc.message})
            raise
        async for message in watch(request, context):
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
            log.warning("NATIVE_IAM_FEED_TOKEN is not set: WatchRevocations refuses every caller (no sidecar can sync)")
        handlers["WatchRevocations"] = stream(
            FEED_SERVICE,
            "WatchRevocations",
            feed_pb2.WatchRevocationsRequest,
            feed_pb2.WatchRevocationsResponse,
            _authenticated(watch, FeedCredentials(core.settings.feed_tokens)),
            metrics,
            tracer,
        )
    return grpc.method_handlers_generic_handler(FEED_SERVICE, handlers)
