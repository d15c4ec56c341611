"""Test doubles for what the sidecar consumes: a token issuer and a Feed server.

:class:`Issuer` mints access tokens with a key generated for the test. :class:`FeedServer` is a
real gRPC server implementing ``native_iam.oauth.v1.Feed`` exactly as feed.proto documents it
(snapshot with ``reset``/``synced``, catch-up from a cursor, live events, heartbeats), so the
sidecar is tested against the protocol rather than against mocks.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc

ISSUER = "http://issuer.test"
AUDIENCE = "native-iam"
Kind = feed_pb2.WatchRevocationsResponse.Kind


class Issuer:
    """Signs access tokens (ES256, RFC 9068 shape) with a fresh key."""

    def __init__(self, kid: str = "k1") -> None:
        self.kid = kid
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(ECAlgorithm.to_jwk(self.private_key.public_key()))
        self.jwk = {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}

    def jwks_json(self, *extra: dict[str, Any]) -> str:
        return json.dumps({"keys": [self.jwk, *extra]})

    def mint(
        self,
        sub: str = "alice",
        scope: str | None = "orders:read",
        *,
        namespace: str | None = "shop",
        jti: str | None = None,
        ttl: float = 600,
        now: float | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = time.time() if now is None else now
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "sub": sub,
            "aud": AUDIENCE,
            "client_id": "test-client",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + ttl),
            "jti": jti or uuid.uuid4().hex,
            "token_usage": "access_token",
        }
        if scope is not None:
            payload["scope"] = scope
        if namespace is not None:
            payload["namespace"] = namespace
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        header = {"typ": "at+jwt", "kid": self.kid, **(headers or {})}
        return jwt.encode(payload, self.private_key, algorithm="ES256", headers=header)


def revocation(sequence: int, target: int, reason: int, **fields: Any) -> feed_pb2.Revocation:
    return feed_pb2.Revocation(sequence=sequence, target=target, reason=reason, **fields)


class _Servicer(feed_pb2_grpc.FeedServicer):
    def __init__(self, feed: FeedServer) -> None:
        self.feed = feed

    def GetJwks(self, request: Any, context: Any) -> feed_pb2.GetJwksResponse:
        self.feed.jwks_calls += 1
        if self.feed.jwks_fail:
            context.abort(grpc.StatusCode.UNAVAILABLE, "jwks unavailable (test)")
        return feed_pb2.GetJwksResponse(jwks_json=self.feed.jwks_json, max_age_s=self.feed.jwks_max_age_s)

    def WatchRevocations(self, request: Any, context: Any) -> Iterator[feed_pb2.WatchRevocationsResponse]:
        feed = self.feed
        feed.watch_requests.append(request.cursor)
        credential = dict(context.invocation_metadata()).get("authorization", "")
        feed.credentials.append(credential)
        if credential in feed.refused:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "the feed credential is not accepted (test)")
        if feed.first_delay_s:
            time.sleep(feed.first_delay_s)  # a slow start (a big snapshot being read)
        with feed.cond:
            events = list(feed.events)
            cursor = feed.sequence
        now_ms = int(time.time() * 1000)
        if request.cursor == 0 or request.cursor < feed.oldest_kept:
            # Full snapshot: the effective set (here: every event, lifted ones included, in order).
            chunks = [events[i : i + 2] for i in range(0, len(events), 2)] or [[]]
            for i, chunk in enumerate(chunks):
                yield feed_pb2.WatchRevocationsResponse(
                    kind=Kind.SNAPSHOT,
                    revocations=chunk,
                    cursor=cursor,
                    reset=i == 0,
                    synced=i == len(chunks) - 1,
                    server_time_ms=now_ms,
                )
        else:
            missed = [e for e in events if e.sequence > request.cursor]
            yield feed_pb2.WatchRevocationsResponse(
                kind=Kind.EVENTS, revocations=missed, cursor=cursor, synced=True, server_time_ms=now_ms
            )
        sent = cursor
        while context.is_active() and not feed.stopping:
            with feed.cond:
                feed.cond.wait_for(lambda s=sent: feed.sequence > s or feed.stopping, timeout=feed.heartbeat_s)
                new = [e for e in feed.events if e.sequence > sent]
                cursor = feed.sequence
            if feed.silent:
                continue
            now_ms = int(time.time() * 1000)
            if new:
                yield feed_pb2.WatchRevocationsResponse(
                    kind=Kind.EVENTS, revocations=new, cursor=cursor, server_time_ms=now_ms
                )
                sent = cursor
            else:
                yield feed_pb2.WatchRevocationsResponse(kind=Kind.HEARTBEAT, cursor=cursor, server_time_ms=now_ms)


class FeedServer:
    """A Feed server on 127.0.0.1 (port 0 unless given): push events with :meth:`publish`."""

    def __init__(self, issuer: Issuer, *, heartbeat_s: float = 0.2, port: int = 0) -> None:
        self.jwks_json = issuer.jwks_json()
        self.jwks_max_age_s = 300
        self.jwks_fail = False
        self.jwks_calls = 0
        self.heartbeat_s = heartbeat_s
        self.events: list[feed_pb2.Revocation] = []
        self.sequence = 0
        self.oldest_kept = 0
        self.silent = False  # True: keep streams open but send nothing (a hung feed)
        self.first_delay_s = 0.0  # seconds a new stream waits before its first message
        self.stopping = False
        self.watch_requests: list[int] = []
        self.credentials: list[str] = []  # the authorization metadata of each WatchRevocations
        self.refused: set[str] = set()  # authorization values answered UNAUTHENTICATED
        self.cond = threading.Condition()
        self._requested_port = port
        self._server: grpc.Server | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FeedServer:
        self.stopping = False
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=[("grpc.so_reuseport", 0)])
        feed_pb2_grpc.add_FeedServicer_to_server(_Servicer(self), server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port or self._requested_port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self._server is not None:
            self._server.stop(0).wait(5)
            self._server = None

    def publish(self, target: int, reason: int, **fields: Any) -> feed_pb2.Revocation:
        """Append one event with the next sequence number and wake the streams."""
        with self.cond:
            self.sequence += 1
            event = revocation(self.sequence, target, reason, **fields)
            self.events.append(event)
            self.cond.notify_all()
        return event
