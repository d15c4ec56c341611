"""native_iam/token_cache.py: the shared verified-token cache rule."""

from __future__ import annotations

from native_iam.token_cache import TokenCache


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_hit_returns_the_value_at_the_same_epoch() -> None:
    """A stored token is found, with its value, under the epoch it was stored at."""
    cache: TokenCache[str] = TokenCache(max_entries=10, ttl_s=60)
    cache.put("t", "v", epoch=3, exp_unix=10_000, now_unix=5_000)
    found = cache.get("t", 3)
    assert found is not None and found.value == "v"


def test_another_epoch_misses() -> None:
    """Once the epoch moves (a revocation, a key change), the entry no longer matches."""
    cache: TokenCache[str] = TokenCache(max_entries=10, ttl_s=60)
    cache.put("t", "v", epoch=3, exp_unix=10_000, now_unix=5_000)
    assert cache.get("t", 4) is None


def test_entry_never_outlives_exp() -> None:
    """An entry expires at the token's exp even when the TTL is longer."""
    clock = Clock()
    cache: TokenCache[str] = TokenCache(max_entries=10, ttl_s=3600, clock=clock)
    cache.put("t", "v", epoch=1, exp_unix=5_010, now_unix=5_000)
    clock.t += 11
    assert cache.get("t", 1) is None


def test_entry_expires_after_ttl() -> None:
    """An entry expires after ttl_s even when the token lives longer."""
    clock = Clock()
    cache: TokenCache[str] = TokenCache(max_entries=10, ttl_s=5, clock=clock)
    cache.put("t", "v", epoch=1, exp_unix=100_000, now_unix=5_000)
    clock.t += 6
    assert cache.get("t", 1) is None


def test_bounded() -> None:
    """The cache never holds more than max_entries."""
    cache: TokenCache[str] = TokenCache(max_entries=2, ttl_s=60)
    for i in range(5):
        cache.put(f"t{i}", "v", epoch=1, exp_unix=10_000, now_unix=5_000)
    assert len(cache) == 2


def test_zero_size_disables() -> None:
    """max_entries 0 stores nothing."""
    cache: TokenCache[str] = TokenCache(max_entries=0, ttl_s=60)
    cache.put("t", "v", epoch=1, exp_unix=10_000, now_unix=5_000)
    assert cache.get("t", 1) is None
