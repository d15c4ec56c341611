"""A compact map of revoked ``jti`` → (reason, expiry) for millions of entries.

A dict of str → object costs about 200 bytes per entry; a sidecar may hold a million revoked
tokens. This table keeps two flat ``array('q')`` columns (open addressing, linear probing, load
at most 1/2): about 32 bytes per entry, no Python object per entry.

Readers run on other threads than the writer (the feed thread) without a lock: the arrays and
their mask are published together as one tuple, a rehash builds new arrays aside and swaps the
tuple in one assignment, and an insert writes the value before the key. A reader therefore sees
the table before or after a change, never a half-built one.

Keys are the process's 64-bit ``hash()`` of the jti (SipHash with a per-process random key, so
collisions cannot be crafted). A collision between a revoked jti and another one has probability
about n / 2**64 per lookup and could only deny a token, never allow one.
"""

from __future__ import annotations

from array import array

_EMPTY, _TOMBSTONE = 0, 1
_MIN_CAPACITY = 1024


def _key(jti: str) -> int:
    h = hash(jti)
    return h + 2 if h in (_EMPTY, _TOMBSTONE) else h


class JtiTable:
    def __init__(self, capacity: int = _MIN_CAPACITY) -> None:
        self._alloc(max(capacity, _MIN_CAPACITY))

    def _alloc(self, capacity: int) -> None:
        self._table = (array("q", bytes(8 * capacity)), array("q", bytes(8 * capacity)), capacity - 1)
        self._live = 0
        self._used = 0  # live + tombstones

    def __len__(self) -> int:
        return self._live

    def get(self, jti: str) -> int | None:
        """The revocation reason of ``jti``, or None."""
        k = _key(jti)
        keys, values, mask = self._table
        i = k & mask
        while True:
            slot = keys[i]
            if slot == k:
                return values[i] & 0xFF
            if slot == _EMPTY:
                return None
            i = (i + 1) & mask

    def entry(self, jti: str) -> tuple[int, int] | None:
        """(reason, expires_unix) of ``jti``, or None."""
        i = self._find(_key(jti))
        if i < 0:
            return None
        value = self._table[1][i]
        return value & 0xFF, value >> 8

    def _find(self, k: int) -> int:
        keys, _, mask = self._table
        i = k & mask
        while True:
            slot = keys[i]
            if slot == k:
                return i
            if slot == _EMPTY:
                return -1
            i = (i + 1) & mask

    def set(self, jti: str, reason: int, expires_unix: int) -> bool:
        """Store ``jti``; True when this changed the table."""
        k = _key(jti)
        value = (max(expires_unix, 0) << 8) | (reason & 0xFF)
        keys, values, mask = self._table
        i = k & mask
        free = -1
        while True:
            slot = keys[i]
            if slot == k:
                if values[i] == value:
                    return False
                values[i] = value
                return True
            if slot == _EMPTY:
                break
            if slot == _TOMBSTONE and free < 0:
                free = i
            i = (i + 1) & mask
        if free < 0:
            free = i
            self._used += 1
        values[free] = value  # value first: a reader that finds the key finds its value
        keys[free] = k
        self._live += 1
        if self._used * 2 > len(keys):
            self._rehash(len(keys) * 2 if self._live * 4 > len(keys) else len(keys))
        return True

    def pop(self, jti: str) -> bool:
        """Forget ``jti``; True when it was there."""
        i = self._find(_key(jti))
        if i < 0:
            return False
        self._table[0][i] = _TOMBSTONE
        self._live -= 1
        return True

    def prune(self, now_unix: float) -> int:
        """Forget entries whose expiry (when set) has passed; returns how many."""
        keys, values, _ = self._table
        removed = 0
        for i in range(len(keys)):
            if keys[i] > _TOMBSTONE or keys[i] < _EMPTY:
                expires = values[i] >> 8
                if 0 < expires < now_unix:
                    keys[i] = _TOMBSTONE
                    removed += 1
        self._live -= removed
        if removed:
            self._rehash(len(keys))
        return removed

    def _rehash(self, capacity: int) -> None:
        old_keys, old_values, _ = self._table
        keys, values, mask = array("q", bytes(8 * capacity)), array("q", bytes(8 * capacity)), capacity - 1
        live = 0
        for j in range(len(old_keys)):
            k = old_keys[j]
            if k in (_EMPTY, _TOMBSTONE):
                continue
            i = k & mask
            while keys[i] != _EMPTY:
                i = (i + 1) & mask
            keys[i] = k
            values[i] = old_values[j]
            live += 1
        self._table = (keys, values, mask)  # one assignment: readers see the old or the new table
        self._live = self._used = live
