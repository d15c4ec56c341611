"""sidecar/revocations.py: the revocation cache and the WatchRevocations client."""

from __future__ import annotations

import time

import grpc

from native_iam.oauth.v1 import feed_pb2
from sidecar.revocations import FeedClient, RevocationCache

from ._feed import FeedServer, Kind, revocation
from .conftest import synced_cache, wait_for

T, R = feed_pb2.RevocationTarget, feed_pb2.RevocationReason


class Clock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


def _events(*revs: feed_pb2.Revocation, cursor: int | None = None) -> feed_pb2.WatchRevocationsResponse:
    return feed_pb2.WatchRevocationsResponse(
        kind=Kind.EVENTS, revocations=revs, cursor=cursor if cursor is not None else max(r.sequence for r in revs)
    )


def _lookup(
    cache: RevocationCache,
    jti: str = "j",
    identity: str = "alice",
    namespace: str = "shop",
    kid: str = "k1",
    iat: float = 100,
) -> int | None:
    return cache.lookup(jti=jti, identity=identity, namespace=namespace, kid=kid, iat=iat)


def test_revoked_jti_is_found_with_its_reason() -> None:
    """A TOKEN revocation kills that jti, with its reason."""
    cache = synced_cache()
    cache.apply(_events(revocation(1, T.TOKEN, R.TOKEN_DISABLED, jti="j", expires_unix=10**10)))
    assert _lookup(cache) == R.TOKEN_DISABLED and _lookup(cache, jti="other") is None


def test_identity_cutoff_kills_tokens_issued_before() -> None:
    """An IDENTITY cut-off kills that identity's tokens with iat at or before it, not later ones."""
    cache = synced_cache()
    cache.apply(
        _events(revocation(1, T.IDENTITY, R.IDENTITY_DISABLED, namespace="shop", identity="alice", cutoff_unix=100))
    )
    assert _lookup(cache, iat=100) == R.IDENTITY_DISABLED
    assert _lookup(cache, iat=101) is None
    assert _lookup(cache, identity="bob", iat=50) is None


def test_namespace_cutoff() -> None:
    """A NAMESPACE cut-off kills every token of the namespace issued before it."""
    cache = synced_cache()
    cache.apply(_events(revocation(1, T.NAMESPACE, R.NAMESPACE_CUT, namespace="shop", cutoff_unix=100)))
    assert _lookup(cache, identity="anyone", iat=99) == R.NAMESPACE_CUT
    assert _lookup(cache, namespace="other", iat=99) is None


def test_key_cutoff() -> None:
    """A KEY cut-off kills tokens signed by that kid before it."""
    cache = synced_cache()
    cache.apply(_events(revocation(1, T.KEY, R.KEY_RETIRED, kid="k1", cutoff_unix=100)))
    assert _lookup(cache, iat=10) == R.KEY_RETIRED and _lookup(cache, kid="k2", iat=10) is None


def test_retired_key_kills_its_tokens_whatever_their_iat() -> None:
    """A retired key's tokens are dead even with an iat after the cut-off (a forger writes any iat)."""
    cache = synced_cache()
    cache.apply(_events(revocation(1, T.KEY, R.KEY_RETIRED, kid="k1", cutoff_unix=100)))
    assert _lookup(cache, iat=101) == R.KEY_RETIRED and _lookup(cache, iat=10**12) == R.KEY_RETIRED
    assert _lookup(cache, kid="k2", iat=101) is None


def test_key_retirements_reach_the_key_store_from_events_and_snapshots() -> None:
    """Every KEY event (live, or in a snapshot, even before it is complete) is passed on at once;
    lifted events and other targets are not."""
    retired: list[str] = []
    cache = RevocationCache(max_staleness_s=30, on_key_retired=retired.append)
    cache.apply(
        feed_pb2.WatchRevocationsResponse(
            kind=Kind.SNAPSHOT, reset=True, cursor=2, revocations=[revocation(2, T.KEY, R.KEY_RETIRED, kid="k0")]
        )
    )
    assert retired == ["k0"]  # mid-snapshot: not synced yet, already banned
    cache.apply(feed_pb2.WatchRevocationsResponse(kind=Kind.SNAPSHOT, cursor=2, synced=True))
    cache.apply(
        _events(
            revocation(3, T.KEY, R.KEY_RETIRED, kid="k1"),
            revocation(4, T.KEY, R.KEY_RETIRED, kid="k2", lifted=True),
            revocation(5, T.TOKEN, R.TOKEN_DISABLED, jti="j", expires_unix=10**10),
        )
    )
    assert retired == ["k0", "k1"]


def test_lifted_identity_revives_tokens_but_not_revoked_jti() -> None:
    """Lifting an identity cut-off keeps tokens revoked by their own event dead."""
    cache = synced_cache()
    cache.apply(
        _events(revocation(1, T.IDENTITY, R.IDENTITY_DISABLED, namespace="shop", identity="alice", cutoff_unix=100))
    )
    cache.apply(_events(revocation(2, T.TOKEN, R.TOKEN_DISABLED, jti="dead")))
    cache.apply(
        _events(revocation(3, T.IDENTITY, R.IDENTITY_DISABLED, namespace="shop", identity="alice", lifted=True))
    )
    assert _lookup(cache, jti="j") is None and _lookup(cache, jti="dead") == R.TOKEN_DISABLED


def test_events_are_idempotent() -> None:
    """Applying the same events twice changes nothing and does not void cached decisions."""
    cache = synced_cache()
    message = _events(revocation(1, T.TOKEN, R.TOKEN_DISABLED, jti="j"))
    cache.apply(message)
    gen = cache.generation
    cache.apply(message)
    assert cache.generation == gen and cache.size()["token"] == 1


def test_older_event_does_not_override_newer() -> None:
    """An event older than the one that last touched a target is ignored."""
    cache = synced_cache()
    cache.apply(
        _events(revocation(5, T.IDENTITY, R.IDENTITY_DISABLED, namespace="shop", identity="alice", lifted=True))
    )
    cache.apply(
        _events(revocation(7, T.IDENTITY, R.POLICY_CHANGED, namespace="shop", identity="alice", cutoff_unix=100))
    )
    cache.apply(
        feed_pb2.WatchRevocationsResponse(
            kind=Kind.SNAPSHOT,
            reset=True,
            cursor=7,
            revocations=[
                revocation(7, T.IDENTITY, R.POLICY_CHANGED, namespace="shop", identity="alice", cutoff_unix=100),
                revocation(6, T.IDENTITY, R.IDENTITY_DISABLED, namespace="shop", identity="alice", lifted=True),
            ],
            synced=True,
        )
    )
    assert _lookup(cache, iat=50) == R.POLICY_CHANGED


def test_each_change_moves_the_generation() -> None:
    """Every applied revocation moves the generation so cached decisions are void at once."""
    cache = synced_cache()
    gen = cache.generation
    cache.apply(_events(revocation(1, T.TOKEN, R.TOKEN_DISABLED, jti="j")))
    assert cache.generation > gen


def test_snapshot_is_swapped_in_only_when_synced() -> None:
    """A reset snapshot is assembled aside: until `synced`, the old set stays in force."""
    cache = synced_cache()
    cache.apply(_events(revocation(1, T.TOKEN, R.TOKEN_DISABLED, jti="old")))
    cache.apply(
        feed_pb2.WatchRevocationsResponse(
            kind=Kind.SNAPSHOT, reset=True, cursor=3, revocations=[revocation(2, T.TOKEN, R.TOKEN_DELETED, jti="new")]
        )
    )
    assert _lookup(cache, jti="old") == R.TOKEN_DISABLED and _lookup(cache, jti="new") is None
    cache.apply(
        feed_pb2.WatchRevocationsResponse(
            kind=Kind.SNAPSHOT, cursor=3, revocations=[revocation(3, T.TOKEN, R.TOKEN_DELETED, jti="new2")], synced=True
        )
    )
    assert _lookup(cache, jti="old") is None
    assert _lookup(cache, jti="new") == R.TOKEN_DELETED and _lookup(cache, jti="new2") == R.TOKEN_DELETED
    assert cache.cursor == 3


def test_unspecified_target_and_kind_are_ignored() -> None:
    """Values feed.proto says to ignore are ignored."""
    cache = synced_cache()
    cache.apply(_events(revocation(1, T.REVOCATION_TARGET_UNSPECIFIED, R.TOKEN_DISABLED, jti="j")))
    cache.apply(feed_pb2.WatchRevocationsResponse(kind=Kind.KIND_UNSPECIFIED, cursor=99))
    assert _lookup(cache) is None and cache.cursor == 1


def test_not_fresh_before_first_sync() -> None:
    """A cache that never synced is not fresh (no decision on an empty set)."""
    cache = RevocationCache(max_staleness_s=30)
    cache.apply(feed_pb2.WatchRevocationsResponse(kind=Kind.HEARTBEAT, cursor=0))
    assert not cache.fresh()


def test_stale_after_silence() -> None:
    """No message for max_staleness_s makes the feed stale; a heartbeat makes it fresh again."""
    clock = Clock()
    cache = RevocationCache(max_staleness_s=5, clock=clock)
    cache.apply(feed_pb2.WatchRevocationsResponse(kind=Kind.SNAPSHOT, reset=True, synced=True))
    clock.t += 6
    assert not cache.fresh() and cache.lag_s() == 6
    cache.apply(feed_pb2.WatchRevocationsResponse(kind=Kind.HEARTBEAT, cursor=0))
    assert cache.fresh()


def test_prune_forgets_expired_entries() -> None:
    """Entries past expires_unix are dropped by prune."""
    cache = synced_cache()
    cache.apply(
        _events(
            revocation(1, T.TOKEN, R.TOKEN_DISABLED, jti="a", expires_unix=100),
            revocation(2, T.TOKEN, R.TOKEN_DISABLED, jti="b", expires_unix=300),
        )
    )
    assert cache.prune(200) == 1 and _lookup(cache, jti="a") is None and _lookup(cache, jti="b") is not None


# ---- FeedClient against a real Feed server ----


def test_client_syncs_from_snapshot(feed: FeedServer) -> None:
    """The client receives the snapshot and reports synced with the server's cursor."""
    feed.publish(T.TOKEN, R.TOKEN_DISABLED, jti="early")
    cache = RevocationCache(max_staleness_s=5)
    with grpc.insecure_channel(feed.address) as channel:
        client = FeedClient(channel, cache, subscriber="test")
        client.start()
        try:
            assert wait_for(lambda: cache.synced)
            assert _lookup(cache, jti="early") == R.TOKEN_DISABLED and cache.cursor == 1
        finally:
            client.stop()


def test_client_applies_live_events(feed: FeedServer) -> None:
    """An event published after sync reaches the cache promptly."""
    cache = RevocationCache(max_staleness_s=5)
    with grpc.insecure_channel(feed.address) as channel:
        client = FeedClient(channel, cache, subscriber="test")
        client.start()
        try:
            assert wait_for(lambda: cache.synced)
            feed.publish(T.TOKEN, R.TOKEN_DELETED, jti="live")
            assert wait_for(lambda: _lookup(cache, jti="live") == R.TOKEN_DELETED, timeout=1)
        finally:
            client.stop()


def test_client_reconnects_and_resumes_from_cursor(feed: FeedServer) -> None:
    """After the feed restarts, the client reconnects with its cursor and gets the missed events."""
    cache = RevocationCache(max_staleness_s=5)
    with grpc.insecure_channel(feed.address) as channel:
        client = FeedClient(channel, cache, subscriber="test")
        client.start()
        try:
            feed.publish(T.TOKEN, R.TOKEN_DISABLED, jti="one")
            assert wait_for(lambda: cache.cursor == 1)
            feed.stop()
            feed.publish(T.TOKEN, R.TOKEN_DISABLED, jti="missed")
            feed.start()
            assert wait_for(lambda: _lookup(cache, jti="missed") is not None, timeout=10)
            assert feed.watch_requests[-1] == 1
        finally:
            client.stop()


def test_watchdog_reconnects_a_silent_stream(feed: FeedServer) -> None:
    """A stream that stays open but sends nothing is cancelled and reopened."""
    cache = RevocationCache(max_staleness_s=5)
    with grpc.insecure_channel(feed.address) as channel:
        client = FeedClient(channel, cache, subscriber="test", idle_timeout_s=0.3)
        client.start()
        try:
            assert wait_for(lambda: cache.synced)
            feed.silent = True
            assert wait_for(lambda: cache.lag_s() > 0.4, timeout=3)
            client.watchdog()
            feed.silent = False
            assert wait_for(lambda: len(feed.watch_requests) >= 2, timeout=5)
        finally:
            client.stop()


def test_cursor_waits_for_the_whole_snapshot() -> None:
    """A half-received snapshot does not move the cursor, so a reconnect asks for the snapshot again."""
    cache = synced_cache()
    cache.apply(_events(revocation(1, T.TOKEN, R.TOKEN_DISABLED, jti="a")))
    cache.apply(
        feed_pb2.WatchRevocationsResponse(
            kind=Kind.SNAPSHOT, reset=True, cursor=9, revocations=[revocation(9, T.TOKEN, R.TOKEN_DISABLED, jti="b")]
        )
    )
    assert cache.cursor == 1
    cache.stream_started()  # the stream broke mid-snapshot
    cache.apply(feed_pb2.WatchRevocationsResponse(kind=Kind.EVENTS, cursor=1, synced=True))
    assert cache.cursor == 1 and _lookup(cache, jti="a") == R.TOKEN_DISABLED and _lookup(cache, jti="b") is None


def test_watchdog_gives_a_new_stream_time_after_an_outage(feed: FeedServer) -> None:
    """After an outage longer than the idle timeout, a reopened stream that is slow to send its
    first message is not cancelled at once (which would loop forever): it gets the full timeout."""
    import threading

    cache = RevocationCache(max_staleness_s=30)
    with grpc.insecure_channel(feed.address) as channel:
        client = FeedClient(channel, cache, subscriber="test", idle_timeout_s=0.5)
        client.start()
        stop = threading.Event()

        def tick() -> None:  # what the worker's housekeeping does
            while not stop.is_set():
                client.watchdog()
                stop.wait(0.05)

        ticker = threading.Thread(target=tick)
        ticker.start()
        try:
            assert wait_for(lambda: cache.synced)
            feed.stop()
            time.sleep(1.0)  # the outage: silence well past the idle timeout
            feed.first_delay_s = 0.3
            feed.start()
            feed.publish(T.TOKEN, R.TOKEN_DISABLED, jti="after-outage")
            assert wait_for(lambda: _lookup(cache, jti="after-outage") is not None, timeout=8)
        finally:
            stop.set()
            ticker.join()
            client.stop()


# --- OAuth clients (issue 13): target CLIENT, by client_id, two subjects per id ---------------


def _client_lookup(cache: RevocationCache, client_id: str = "svc", iat: float = 100, **kw: str) -> int | None:
    fields = {"jti": "j", "identity": "", "namespace": "", "kid": "k1", "principal": "client", **kw}
    return cache.lookup(iat=iat, client_id=client_id, **fields)  # type: ignore[arg-type]


def test_client_cutoff_kills_every_token_with_its_client_id() -> None:
    """CLIENT_DISABLED kills tokens whose client_id is the client with iat <= cut-off: its own
    tokens and identities' tokens it obtained; another client's and later tokens pass."""
    cache = synced_cache()
    cache.apply(_events(revocation(1, T.CLIENT, R.CLIENT_DISABLED, client_id="svc", cutoff_unix=100)))
    assert _client_lookup(cache) == R.CLIENT_DISABLED
    assert cache.lookup(jti="j", identity="alice", namespace="shop", kid="k1", iat=100, client_id="svc") == (
        R.CLIENT_DISABLED
    )
    assert _client_lookup(cache, iat=101) is None and _client_lookup(cache, client_id="other") is None


def test_client_deletion_outlives_a_lifted_disable_of_the_recreated_client() -> None:
    """A client id's deletion cut-off is never withdrawn by the enable of a client registered later."""
    cache = synced_cache()
    cache.apply(
        _events(
            revocation(1, T.CLIENT, R.CLIENT_DELETED, client_id="svc", cutoff_unix=100),
            revocation(2, T.CLIENT, R.CLIENT_DISABLED, client_id="svc", cutoff_unix=110),
            revocation(3, T.CLIENT, R.CLIENT_DISABLED, client_id="svc", cutoff_unix=111, lifted=True),
        )
    )
    assert _client_lookup(cache, iat=100) == R.CLIENT_DELETED
    assert _client_lookup(cache, iat=105) is None  # the new client's token: its disable was lifted


def test_identity_events_never_touch_a_client_token_of_the_same_name() -> None:
    """A client's own token (principal client) whose sub spells an identity's name is not killed by
    that identity's deletion; the identity's token is not killed by the client's… unless its
    client_id is that client."""
    cache = synced_cache()
    cache.apply(
        _events(
            revocation(1, T.IDENTITY, R.IDENTITY_DELETED, namespace="", identity="svc", cutoff_unix=100),
            revocation(2, T.CLIENT, R.CLIENT_DELETED, client_id="other", cutoff_unix=100),
        )
    )
    assert _client_lookup(cache, identity="svc") is None
    identity_token = {"jti": "j", "identity": "svc", "namespace": "", "kid": "k1", "iat": 100}
    assert cache.lookup(**identity_token, client_id="web") == R.IDENTITY_DELETED  # type: ignore[arg-type]


def test_client_event_without_client_id_is_ignored() -> None:
    """A CLIENT event naming no client is malformed: ignored, nothing revoked."""
    cache = synced_cache()
    cache.apply(_events(revocation(1, T.CLIENT, R.CLIENT_DISABLED, cutoff_unix=100)))
    assert _client_lookup(cache, client_id="") is None and cache.size()["client"] == 0
