"""The revocation cache and the ``Feed.WatchRevocations`` client that fills it.

The cache holds revoked ``jti`` until their expiry, per-identity, per-OAuth-client and
per-namespace cut-off instants (tokens issued at or before a cut-off are dead), each with its reason, and retired keys:
every token a retired key signed is dead whatever its ``iat`` (whoever holds a compromised key
writes any ``iat`` they like), and the key store is told to drop the key at once. Events are
applied in order and idempotently: an event at or below the cursor is skipped, and a subject keeps
the newest event that touched it (:mod:`native_iam.revocation_subjects`: an identity name's
deletion cut-off and its current state are two subjects, so lifting a disable of a re-created
identity never brings the deleted one's tokens back). A snapshot (``reset``) is assembled aside
and swapped in when ``synced`` arrives, so a reconnect never exposes a half-filled set.

Staleness: the feed is stale when no message (event or heartbeat) arrived for
``max_staleness_s``. A stale or never-synced feed makes :meth:`RevocationCache.fresh` false; the
deciding code then applies the policy (``closed``: deny ``feed_stale``; ``open``: keep deciding
from the cache, but never before the first sync).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from native_iam import claims
from native_iam.limits import MAX_SUBSCRIBER_BYTES
from native_iam.oauth.v1 import feed_pb2
from native_iam.revocation_subjects import (
    CLIENT_DELETION,
    CLIENT_STATE,
    IDENTITY_DELETION,
    IDENTITY_STATE,
    client_slot,
    identity_slot,
    names_identity,
)

from ._jti_table import JtiTable

log = logging.getLogger("sidecar.revocations")

Kind = feed_pb2.WatchRevocationsResponse.Kind
Target = feed_pb2.RevocationTarget
Reason = feed_pb2.RevocationReason

#: How each reason is described in a deny's ``error_description`` (never names internals).
DESCRIPTIONS: dict[int, str] = {
    Reason.REVOCATION_REASON_UNSPECIFIED: "the token was revoked",
    Reason.TOKEN_DISABLED: "the token was disabled",
    Reason.TOKEN_DELETED: "the token was deleted",
    Reason.IDENTITY_DISABLED: "the identity was disabled",
    Reason.IDENTITY_DELETED: "the identity was deleted",
    Reason.POLICY_CHANGED: "the identity's policy changed",
    Reason.KEY_RETIRED: "the signing key was retired",
    Reason.REFRESH_TOKEN_REUSE: "the token family was revoked after refresh token reuse",
    Reason.CLIENT_REVOKED: "the token was revoked by its client",
    Reason.NAMESPACE_CUT: "the namespace's tokens were revoked",
    Reason.AUTHORIZATION_CODE_REUSE: "the tokens of a reused authorization code were revoked",
    Reason.CLIENT_DISABLED: "the token's client was disabled",
    Reason.CLIENT_DELETED: "the token's client was deleted",
}


@dataclass(frozen=True, slots=True)
class Entry:
    reason: int
    expires_unix: int
    sequence: int
    cutoff_unix: int = 0


@dataclass(slots=True)
class _Sets:
    # Revoked jti can number millions: a compact table rather than a dict of objects.
    tokens: JtiTable = field(default_factory=JtiTable)
    #: By (namespace, name, IDENTITY_DELETION or IDENTITY_STATE).
    identities: dict[tuple[str, str, str], Entry] = field(default_factory=dict)
    namespaces: dict[str, Entry] = field(default_factory=dict)
    keys: dict[str, Entry] = field(default_factory=dict)
    #: By (client_id, CLIENT_DELETION or CLIENT_STATE).
    clients: dict[tuple[str, str], Entry] = field(default_factory=dict)

    def size(self) -> int:
        return len(self.tokens) + len(self.identities) + len(self.namespaces) + len(self.keys) + len(self.clients)


class RevocationCache:
    """What the feed says is revoked, plus the feed's health (cursor, synced, last message)."""

    def __init__(
        self,
        *,
        max_staleness_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_key_retired: Callable[[str], None] = lambda kid: None,
    ) -> None:
        self._sets = _Sets()
        # Told every retired kid (events and snapshots alike) so that the key store drops it.
        self._on_key_retired = on_key_retired
        self._staging: _Sets | None = None
        self._staging_cursor = 0
        self._clock = clock
        self.max_staleness_s = max_staleness_s
        self.cursor = 0
        self.synced = False
        self.last_message_at = float("-inf")
        self.server_time_ms = 0
        # Bumped whenever the effective set changes: cached decisions made before are void.
        self.generation = 0
        self._lock = threading.Lock()

    # ---- reading (hot path) ----

    def fresh(self) -> bool:
        """Synced at least once and heard from the feed within ``max_staleness_s``."""
        return self.synced and self._clock() - self.last_message_at <= self.max_staleness_s

    def lag_s(self) -> float:
        """Seconds since the last message from the feed (infinite before the first)."""
        return self._clock() - self.last_message_at

    def lookup(
        self,
        *,
        jti: str,
        identity: str,
        namespace: str,
        kid: str,
        iat: float,
        client_id: str = "",
        principal: str = claims.IDENTITY_PRINCIPAL,
    ) -> int | None:
        """The revocation reason that kills this token, or None when it is alive.

        ``principal`` is the token's ``sub_kind``: IDENTITY events apply only when ``identity``
        names an identity (:func:`~native_iam.revocation_subjects.names_identity`); CLIENT events
        apply by ``client_id`` whatever the subject.
        """
        sets = self._sets
        retired = sets.keys.get(kid)
        if retired is not None:
            # No iat test: the holder of a retired key chooses the iat. First, as at the token
            # service, which refuses the key's tokens before it looks at their records.
            return retired.reason
        reason = sets.tokens.get(jti)
        if reason == Reason.TOKEN_DELETED:
            return reason
        # A deleted identity's (or client's) token is TOKEN_NOT_FOUND at CheckAccess even when the
        # token itself was disabled or the name's current identity is disabled: deletions answer first.
        person = names_identity(principal)
        for deleted in (
            sets.identities.get((namespace, identity, IDENTITY_DELETION)) if person else None,
            sets.clients.get((client_id, CLIENT_DELETION)) if client_id and sets.clients else None,
        ):
            if deleted is not None and iat <= deleted.cutoff_unix:
                return deleted.reason
        if reason is not None:
            return reason
        for entry in (
            sets.identities.get((namespace, identity, IDENTITY_STATE)) if person else None,
            sets.clients.get((client_id, CLIENT_STATE)) if client_id and sets.clients else None,
            sets.namespaces.get(namespace),
        ):
            if entry is not None and iat <= entry.cutoff_unix:
                return entry.reason
        return None

    def size(self) -> dict[str, int]:
        s = self._sets
        return {
            "token": len(s.tokens),
            "identity": len(s.identities),
            "namespace": len(s.namespaces),
            "key": len(s.keys),
            "client": len(s.clients),
        }

    # ---- writing (feed thread) ----

    def stream_started(self) -> None:
        """A new stream begins: a snapshot left half-received by the last one is discarded."""
        with self._lock:
            self._staging = None
            self._staging_cursor = 0

    def apply(self, message: Any) -> None:
        """Apply one ``WatchRevocationsResponse``."""
        with self._lock:
            self.last_message_at = self._clock()
            self.server_time_ms = message.server_time_ms
            kind = message.kind
            if kind == Kind.SNAPSHOT:
                if message.reset or self._staging is None:
                    self._staging = _Sets()
                # The cursor moves only when the whole snapshot is in: a stream that breaks
                # mid-snapshot must resume from the old cursor and get the snapshot again.
                self._staging_cursor = message.cursor
                for revocation in message.revocations:
                    _apply_one(self._staging, revocation)
                    self._retire_key(revocation)
            elif kind == Kind.EVENTS:
                target = self._staging if self._staging is not None else self._sets
                changed = False
                for revocation in message.revocations:
                    if revocation.sequence <= self.cursor and self._staging is None:
                        continue  # already applied before a reconnect
                    changed |= _apply_one(target, revocation)
                    self._retire_key(revocation)
                if changed and target is self._sets:
                    self.generation += 1
                if self._staging is not None:
                    self._staging_cursor = max(self._staging_cursor, message.cursor)
            elif kind != Kind.HEARTBEAT:
                return  # KIND_UNSPECIFIED: ignore, as feed.proto says
            if self._staging is None and message.cursor > self.cursor:
                self.cursor = message.cursor
            if message.synced:
                if self._staging is not None:
                    self._sets = self._staging
                    self._staging = None
                    # A snapshot replaces everything, its cursor included (even a lower one).
                    self.cursor = self._staging_cursor
                    self.generation += 1
                if not self.synced:
                    log.info("revocation feed synced", extra={"cursor": self.cursor, "entries": self._sets.size()})
                self.synced = True

    def _retire_key(self, r: Any) -> None:
        """Pass a key retirement on at once, even mid-snapshot: a retired key is never trusted again."""
        if r.target == Target.KEY and r.kid and not r.lifted:
            self._on_key_retired(r.kid)

    def prune(self, now_unix: float) -> int:
        """Forget entries whose ``expires_unix`` has passed; returns how many were removed."""
        removed = 0
        with self._lock:
            sets = self._sets
            removed += sets.tokens.prune(now_unix)
            for table in (sets.identities, sets.namespaces, sets.keys, sets.clients):
                dead = [k for k, e in table.items() if 0 < e.expires_unix < now_unix]
                for k in dead:
                    del table[k]
                removed += len(dead)
        return removed


def _apply_one(sets: _Sets, r: Any) -> bool:
    """Apply one Revocation to ``sets``; True when it changed them."""
    target = r.target
    if target == Target.TOKEN:
        # Events arrive in order on one stream (and the cursor skips replays), so the newest
        # event for a jti is the last one applied.
        jti = r.jti
        if not jti:
            return False
        if r.lifted:
            return sets.tokens.pop(jti)
        return sets.tokens.set(jti, r.reason, r.expires_unix)
    table: dict[Any, Entry]
    key: Any
    if target == Target.IDENTITY:
        table, key = sets.identities, (r.namespace, r.identity, identity_slot(r.reason))
    elif target == Target.NAMESPACE:
        table, key = sets.namespaces, r.namespace
    elif target == Target.KEY:
        table, key = sets.keys, r.kid
    elif target == Target.CLIENT:
        table, key = sets.clients, (r.client_id, client_slot(r.reason))
    else:
        return False  # REVOCATION_TARGET_UNSPECIFIED: ignore, as feed.proto says
    if not key or (target == Target.IDENTITY and not r.identity) or (target == Target.CLIENT and not r.client_id):
        return False
    current = table.get(key)
    if current is not None and current.sequence > r.sequence:
        return False  # an older event for a target a newer one already decided
    if r.lifted:
        return table.pop(key, None) is not None
    entry = Entry(reason=r.reason, expires_unix=r.expires_unix, sequence=r.sequence, cutoff_unix=r.cutoff_unix)
    if current == entry:
        return False
    table[key] = entry
    return True


class RenewedCredential(Protocol):
    """A feed credential that expires (sidecar.workload_tokens.FeedCredential)."""

    def bearer(self, *, renew: bool = False) -> tuple[str, float]:
        """``(token, monotonic instant to renew it)``; ``renew``: the last one was refused."""
        ...


class FeedClient:
    """Keeps one ``WatchRevocations`` stream open, reconnecting with back-off from the cursor.

    The credential is a static feed token or a :class:`RenewedCredential` (a workload token): that
    one is asked for at every (re)connect, renewed after the token service refused it, and the
    stream is reopened with a fresh one when it is due for renewal (the token service ends a
    stream whose token expires), resuming from the cursor.
    """

    def __init__(
        self,
        channel: Any,
        cache: RevocationCache,
        *,
        subscriber: str,
        credential: str | RenewedCredential = "",
        idle_timeout_s: float = 15.0,
        on_connected: Callable[[bool], None] = lambda up: None,
        on_message: Callable[[], None] = lambda: None,
    ) -> None:
        from native_iam.oauth.v1 import feed_pb2_grpc

        self._stub = feed_pb2_grpc.FeedStub(channel)
        self._cache = cache
        self._subscriber = subscriber[:MAX_SUBSCRIBER_BYTES]
        # WatchRevocations needs the feed credential (GetJwks does not): sent on every (re)connect.
        self._credential = credential
        self._renew = False
        self._renew_at = float("inf")
        self._renewing = False  # the stream was cancelled to renew its credential: not a fault
        self._idle_timeout_s = idle_timeout_s
        self._on_connected = on_connected
        self._on_message = on_message
        self._stop = threading.Event()
        self._call: Any = None
        self._stream_started_at = 0.0
        self._thread = threading.Thread(target=self._run, name="revocation-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(5)

    def watchdog(self) -> None:
        """Cancel a stream that went silent (no heartbeat): the reader reconnects. Call periodically.

        Silence counts from the last message or from the stream's start, whichever is later, so a
        stream opened after an outage is given its full idle timeout to send its first message.
        """
        call = self._call
        if call is None:
            return
        silent_s = min(self._cache.lag_s(), time.monotonic() - self._stream_started_at)
        if silent_s > self._idle_timeout_s:
            log.warning("revocation feed silent; reconnecting", extra={"silent_s": round(silent_s, 1)})
            call.cancel()
        elif time.monotonic() >= self._renew_at:
            log.info("revocation feed credential due for renewal; reconnecting")
            self._renew_at = float("inf")
            self._renewing = True
            call.cancel()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """The authorization metadata of the next stream; raises when a workload token cannot be had."""
        credential = self._credential
        if isinstance(credential, str):
            return (("authorization", f"Bearer {credential}"),) if credential else ()
        token, self._renew_at = credential.bearer(renew=self._renew)
        self._renew = False
        return (("authorization", f"Bearer {token}"),)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            self._cache.stream_started()
            request = feed_pb2.WatchRevocationsRequest(cursor=self._cache.cursor, subscriber=self._subscriber)
            try:
                metadata = self._metadata()
            except Exception as exc:  # WorkloadTokenError: the token service is down or refuses the pod
                log.warning("revocation feed credential unavailable", extra={"error": str(exc)})
                self._stop.wait(random.uniform(backoff / 2, backoff))  # noqa: S311 (jitter, not security)
                backoff = min(backoff * 2, 5.0)
                continue
            self._renewing = False
            try:
                self._stream_started_at = time.monotonic()
                self._call = self._stub.WatchRevocations(request, metadata=metadata)
                first = True
                for message in self._call:
                    if first:
                        self._on_connected(True)
                        first = False
                    self._cache.apply(message)
                    self._on_message()
                    backoff = 0.1
            except Exception as exc:  # grpc.RpcError (UNAVAILABLE, CANCELLED, …): reconnect below
                if self._stop.is_set():
                    break
                if self._renewing:
                    pass  # cancelled by the watchdog to renew the credential: logged there
                elif _code(exc) == str(grpc.StatusCode.UNAUTHENTICATED):
                    if isinstance(self._credential, str):
                        log.error("revocation feed refused this sidecar: check NATIVE_IAM_FEED_TOKEN")
                    else:
                        # Expired or revoked meanwhile: the next connect fetches a new one.
                        self._renew = True
                        log.warning(
                            "revocation feed refused the workload token; renewing it (its client needs scope"
                            " native-iam.feed for the token service's audience)"
                        )
                else:
                    log.warning(
                        "revocation feed disconnected", extra={"error": _code(exc), "cursor": self._cache.cursor}
                    )
            finally:
                self._call = None
                self._on_connected(False)
            # Full jitter keeps a fleet of sidecars from reconnecting in lock-step.
            self._stop.wait(random.uniform(0, backoff))  # noqa: S311 (jitter, not security)
            backoff = min(backoff * 2, 5.0)


def _code(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    return str(code()) if callable(code) else type(exc).__name__
