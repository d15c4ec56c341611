"""Fixtures shared by the sidecar tests."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sidecar.decision import Policy
from sidecar.keys import KeyStore, VerifyKey, parse_jwks
from sidecar.revocations import RevocationCache

from ._feed import AUDIENCE, ISSUER, FeedServer, Issuer, Kind


@pytest.fixture(scope="session")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="session")
def keys(issuer: Issuer) -> dict[str, VerifyKey]:
    return parse_jwks(issuer.jwks_json())


@pytest.fixture
def policy() -> Policy:
    return Policy(issuer=ISSUER, audiences=(AUDIENCE,), leeway_s=30, max_token_bytes=8192)


def loaded_store(issuer: Issuer, **kw: float) -> KeyStore:
    """A KeyStore whose fetch returns the issuer's JWKS, already loaded."""
    store = KeyStore(lambda: (issuer.jwks_json(), 300.0), max_age_s=kw.get("max_age_s", 3600), min_refetch_s=0)
    assert store.refresh()
    return store


def synced_cache(max_staleness_s: float = 30.0) -> RevocationCache:
    """A RevocationCache that has seen an empty snapshot just now."""
    from native_iam.oauth.v1 import feed_pb2

    cache = RevocationCache(max_staleness_s=max_staleness_s)
    cache.apply(feed_pb2.WatchRevocationsResponse(kind=Kind.SNAPSHOT, reset=True, synced=True, cursor=0))
    return cache


@pytest.fixture
def feed(issuer: Issuer) -> Iterator[FeedServer]:
    server = FeedServer(issuer).start()
    yield server
    server.stop()


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
