"""sidecar/decision_cache.py: bounded, never past exp, void when the epoch moves."""

from __future__ import annotations

from sidecar.decision import Principal
from sidecar.decision_cache import DecisionCache


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _p(exp: float) -> Principal:
    return Principal("a", "", frozenset(), "j", "k", "", 0, exp)


def test_hit_returns_entry() -> None:
    """A stored token is found with the same epoch."""
    cache = DecisionCache(max_entries=10, ttl_s=60)
    cache.put("t", _p(exp=10_000), 1, b"resp", now_unix=5_000)
    entry = cache.get("t", 1)
    assert entry is not None and entry.response == b"resp"


def test_epoch_change_voids_entries() -> None:
    """After a revocation or key change (new epoch) the entry no longer matches."""
    cache = DecisionCache(max_entries=10, ttl_s=60)
    cache.put("t", _p(exp=10_000), 1, b"resp", now_unix=5_000)
    assert cache.get("t", 2) is None


def test_entry_never_outlives_exp() -> None:
    """An entry expires at the token's exp even when the TTL is longer."""
    clock = Clock()
    cache = DecisionCache(max_entries=10, ttl_s=3600, clock=clock)
    cache.put("t", _p(exp=5_010), 1, b"resp", now_unix=5_000)
    clock.t += 9
    assert cache.get("t", 1) is not None
    clock.t += 2
    assert cache.get("t", 1) is None


def test_entry_expires_after_ttl() -> None:
    """An entry expires after ttl_s even when the token lives longer."""
    clock = Clock()
    cache = DecisionCache(max_entries=10, ttl_s=5, clock=clock)
    cache.put("t", _p(exp=100_000), 1, b"resp", now_unix=5_000)
    clock.t += 6
    assert cache.get("t", 1) is None


def test_already_expired_token_is_not_stored() -> None:
    """A token past its exp (accepted within leeway) is not cached."""
    cache = DecisionCache(max_entries=10, ttl_s=60)
    cache.put("t", _p(exp=4_990), 1, b"resp", now_unix=5_000)
    assert len(cache) == 0


def test_cache_is_bounded() -> None:
    """The cache never holds more than max_entries."""
    cache = DecisionCache(max_entries=3, ttl_s=60)
    for i in range(10):
        cache.put(f"t{i}", _p(exp=10_000), 1, b"r", now_unix=5_000)
    assert len(cache) == 3 and cache.get("t9", 1) is not None


def test_disabled_cache_stores_nothing() -> None:
    """max_entries 0 disables the cache."""
    cache = DecisionCache(max_entries=0, ttl_s=60)
    cache.put("t", _p(exp=10_000), 1, b"r", now_unix=5_000)
    assert cache.get("t", 1) is None
