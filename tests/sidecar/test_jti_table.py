"""sidecar/_jti_table.py: the compact revoked-jti table."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar._jti_table import JtiTable


def test_set_get_pop() -> None:
    """A stored jti is found with its reason and expiry until popped."""
    t = JtiTable()
    assert t.set("a", 3, 1000) and t.get("a") == 3 and t.entry("a") == (3, 1000)
    assert t.get("b") is None
    assert t.pop("a") and t.get("a") is None and not t.pop("a") and len(t) == 0


def test_set_same_value_is_no_change() -> None:
    """Storing the same entry again reports no change (idempotent events)."""
    t = JtiTable()
    t.set("a", 1, 10)
    assert not t.set("a", 1, 10) and t.set("a", 2, 10) and t.get("a") == 2


def test_grows_past_initial_capacity() -> None:
    """Thousands of entries force rehashing; every one stays findable."""
    t = JtiTable()
    for i in range(5000):
        t.set(f"jti-{i}", i % 10, 100 + i)
    assert len(t) == 5000 and all(t.get(f"jti-{i}") == i % 10 for i in range(5000))


def test_prune_drops_only_expired() -> None:
    """prune forgets entries whose expiry passed, and keeps entries without expiry."""
    t = JtiTable()
    t.set("old", 1, 100)
    t.set("new", 1, 300)
    t.set("forever", 1, 0)
    assert t.prune(200) == 1 and t.get("old") is None and t.get("new") == 1 and t.get("forever") == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "pop"]), st.text(max_size=6), st.integers(0, 9)), max_size=300))
def test_behaves_like_a_dict(ops: list[tuple[str, str, int]]) -> None:
    """Any sequence of set/pop gives the same answers as a dict (tombstones, reuse, rehash)."""
    t, model = JtiTable(), {}
    for op, jti, reason in ops:
        if op == "set":
            t.set(jti, reason, 1000)
            model[jti] = reason
        else:
            assert t.pop(jti) == (model.pop(jti, None) is not None)
    assert len(t) == len(model) and all(t.get(j) == r for j, r in model.items())


def test_reader_never_misses_an_entry_while_the_writer_rehashes() -> None:
    """A lookup on another thread finds a revoked jti throughout growth and rehashing (no lock)."""
    import threading

    t = JtiTable()
    t.set("revoked", 1, 0)
    misses = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            if t.get("revoked") != 1:
                misses.append(1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(60_000):
            t.set(f"j{i}", 2, 0)
            if i % 7 == 0:
                t.pop(f"j{i}")
    finally:
        done.set()
        reader.join()
    assert not misses and t.get("revoked") == 1
