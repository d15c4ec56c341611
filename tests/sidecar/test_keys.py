"""sidecar/keys.py: JWKS parsing, algorithm allow-list, refresh, max age, single-flight refetch."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from sidecar.keys import JwksError, KeyStore, grpc_fetcher, http_fetcher, parse_jwks

from ._feed import FeedServer, Issuer
from .conftest import wait_for


def test_ec_key_verifies_es256(issuer: Issuer) -> None:
    """An EC P-256 key is usable with ES256 only."""
    keys = parse_jwks(issuer.jwks_json())
    assert keys["k1"].alg == "ES256"


def test_rsa_and_okp_keys_get_their_algorithms() -> None:
    """RSA keys verify RS256 and Ed25519 keys EdDSA."""
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048).public_key()))
    okp_jwk = json.loads(OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key()))
    keys = parse_jwks(json.dumps({"keys": [{**rsa_jwk, "kid": "r"}, {**okp_jwk, "kid": "o"}]}))
    assert (keys["r"].alg, keys["o"].alg) == ("RS256", "EdDSA")


def test_hmac_keys_are_never_used() -> None:
    """A symmetric (oct) key in a JWKS is skipped: HMAC with a published key proves nothing."""
    assert parse_jwks(json.dumps({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]})) == {}


def test_key_with_conflicting_alg_is_skipped(issuer: Issuer) -> None:
    """An EC key that claims alg RS256 is skipped rather than trusted."""
    assert parse_jwks(json.dumps({"keys": [{**issuer.jwk, "alg": "RS256"}]})) == {}


def test_encryption_key_is_skipped(issuer: Issuer) -> None:
    """A key with use 'enc' does not verify signatures."""
    assert parse_jwks(json.dumps({"keys": [{**issuer.jwk, "use": "enc"}]})) == {}


def test_key_without_kid_is_skipped(issuer: Issuer) -> None:
    """Keys must have a kid (tokens select keys by kid)."""
    jwk = dict(issuer.jwk)
    del jwk["kid"]
    assert parse_jwks(json.dumps({"keys": [jwk]})) == {}


@pytest.mark.parametrize("text", ["not json", "[]", '{"keys": 5}'])
def test_invalid_jwks_raises(text: str) -> None:
    """A document that is not a JWKS raises JwksError."""
    with pytest.raises(JwksError):
        parse_jwks(text)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_failed_refresh_keeps_last_known_good_keys(issuer: Issuer) -> None:
    """A failing fetch keeps the previous keys in use."""
    results = [(issuer.jwks_json(), 300.0)]

    def fetch() -> tuple[str, float]:
        if not results:
            raise JwksError("down")
        return results.pop()

    store = KeyStore(fetch, max_age_s=3600, min_refetch_s=0)
    assert store.refresh() and not store.refresh()
    assert store.usable() is not None and "k1" in store.usable()  # type: ignore[operator]


def test_keys_older_than_max_age_are_unusable(issuer: Issuer) -> None:
    """Last-known-good keys serve only up to jwks_max_age_s."""
    clock = Clock()
    store = KeyStore(lambda: (issuer.jwks_json(), 300.0), max_age_s=60, min_refetch_s=0, clock=clock)
    store.refresh()
    clock.t += 59
    assert store.usable() is not None
    clock.t += 2
    assert store.usable() is None


def test_never_loaded_is_unusable() -> None:
    """Before the first fetch there are no keys."""
    store = KeyStore(lambda: ("{}", 1.0), max_age_s=60, min_refetch_s=0)
    assert store.usable() is None and not store.loaded


def test_generation_moves_only_when_keys_change(issuer: Issuer) -> None:
    """Refetching the same keys keeps the generation; a new key set moves it."""
    jwks = [issuer.jwks_json()]
    store = KeyStore(lambda: (jwks[0], 300.0), max_age_s=60, min_refetch_s=0)
    store.refresh()
    gen = store.generation
    store.refresh()
    assert store.generation == gen
    jwks[0] = Issuer(kid="k2").jwks_json()
    store.refresh()
    assert store.generation == gen + 1


def test_refetch_is_single_flight(issuer: Issuer) -> None:
    """Concurrent refetches for unknown kids share one fetch."""
    calls = []
    gate = threading.Event()

    def fetch() -> tuple[str, float]:
        calls.append(1)
        gate.wait(2)
        return issuer.jwks_json(), 300.0

    store = KeyStore(fetch, max_age_s=60, min_refetch_s=0)
    first, second = store.refetch(), store.refetch()
    gate.set()
    assert first.result(2) and first is second and len(calls) == 1
    store.close()


def test_refetch_is_rate_limited(issuer: Issuer) -> None:
    """Within min_refetch_s of the last attempt, a refetch does not fetch again."""
    calls = []

    def fetch() -> tuple[str, float]:
        calls.append(1)
        return issuer.jwks_json(), 300.0

    store = KeyStore(fetch, max_age_s=60, min_refetch_s=30)
    assert store.refetch().result(2) is True
    assert store.refetch().result(2) is False
    assert len(calls) == 1
    store.close()


def test_grpc_fetcher_reads_feed_getjwks(issuer: Issuer, feed: FeedServer) -> None:
    """Keys come from the token service's Feed.GetJwks with its max_age_s."""
    import grpc

    with grpc.insecure_channel(feed.address) as channel:
        text, max_age = grpc_fetcher(channel)()
    assert "k1" in parse_jwks(text) and max_age == 300


def test_grpc_fetcher_failure_is_jwks_error(feed: FeedServer) -> None:
    """An unavailable Feed raises JwksError."""
    import grpc

    feed.jwks_fail = True
    with grpc.insecure_channel(feed.address) as channel, pytest.raises(JwksError):
        grpc_fetcher(channel)()


def test_http_fetcher_reads_url_and_max_age(issuer: Issuer) -> None:
    """NATIVE_IAM_JWKS_URL: the JWKS is fetched over HTTP and Cache-Control max-age is honoured."""
    body = issuer.jwks_json().encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Cache-Control", "public, max-age=42")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        text, max_age = http_fetcher(f"http://127.0.0.1:{server.server_port}/jwks.json")()
    finally:
        server.shutdown()
        server.server_close()
    assert "k1" in parse_jwks(text) and max_age == 42


def test_http_fetcher_unreachable_is_jwks_error() -> None:
    """An unreachable JWKS URL raises JwksError."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(JwksError):
        http_fetcher(f"http://127.0.0.1:{port}/jwks.json", timeout_s=1)()
    assert time.monotonic() - started < 5


def test_retired_key_is_dropped_at_once_and_never_readmitted(issuer: Issuer) -> None:
    """ban(kid): the key leaves the set now (new generation, so cached allows are void), a JWKS that
    still lists it (a stale replica or cache) never brings it back, and the other keys stay."""
    other = Issuer("k2")
    fetches: list[float] = []

    def fetch() -> tuple[str, float]:
        fetches.append(time.monotonic())
        return issuer.jwks_json(other.jwk), 300.0

    store = KeyStore(fetch, max_age_s=3600, min_refetch_s=3600)
    assert store.refresh() and set(store.keys) == {"k1", "k2"}
    generation = store.generation
    store.ban("k1")
    assert set(store.keys) == {"k2"} and store.retired == {"k1"} and store.generation > generation
    # The ban fetches at once (the replacement key signs from now), despite min_refetch_s.
    assert wait_for(lambda: len(fetches) == 2)
    assert store.refresh() and store.refetch(force=True).result(5)
    assert set(store.keys) == {"k2"}, "a stale JWKS re-admitted a retired key"
    generation = store.generation
    store.ban("k1")  # again (a snapshot after a reconnect): nothing changes
    assert store.generation == generation
