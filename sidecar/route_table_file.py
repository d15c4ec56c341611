"""The route table file (``NATIVE_IAM_ROUTE_TABLE_FILE``): loaded at start, reloaded when it changes.

At start an invalid file is fatal (the CLI refuses to start with one line naming the file and the
error's line), like any other bad setting: a sidecar must not come up deciding by a table other
than the one configured. Later, the file is polled (``os.stat`` through symlinks, about once a
second from the housekeeping loop): a changed device, inode, size or mtime triggers a reload. That
covers editors, ``mv``-into-place and Kubernetes ConfigMap volumes, which swap the ``..data``
symlink to a new directory (mount the directory, not a ``subPath``: those never update). A file
that fails to load keeps the **last good table** in force, is logged once per change (one line:
file and error location) and sets ``native_iam_sidecar_route_table_valid`` to 0 until a good
version arrives; every attempt counts in ``native_iam_sidecar_route_table_reloads_total{result}``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from .metrics import Metrics
from .route_table import MAX_BYTES, RouteTable, RouteTableError, parse

log = logging.getLogger("sidecar.route_table")

_Stamp = tuple[int, int, int, int] | None
POLL_INTERVAL_S = 1.0


def _stamp(path: str) -> _Stamp:
    try:
        st = os.stat(path)  # follows symlinks: a ConfigMap's ..data swap changes the inode
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def load(path: str) -> RouteTable:
    """The table in ``path``; :class:`RouteTableError` names the file and where it is wrong."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        text = data.decode("utf-8")
    except OSError as exc:
        raise RouteTableError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise RouteTableError(f"{path}: not UTF-8 (byte {exc.start})") from None
    try:
        return parse(text)
    except RouteTableError as exc:
        raise RouteTableError(f"{path}: {exc}") from None
    except (RecursionError, MemoryError, ValueError, TypeError) as exc:
        # Whatever the parser did not foresee is still an invalid file, never a crashed reload.
        raise RouteTableError(f"{path}: cannot load: {type(exc).__name__}") from None


class RouteTableFile:
    """The table in force and the file it came from. :attr:`table` is swapped whole (atomically)."""

    def __init__(
        self,
        path: str,
        metrics: Metrics | None = None,
        *,
        poll_interval_s: float = POLL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._metrics = metrics
        self._interval = poll_interval_s
        self._clock = clock
        self._stamp = _stamp(path)
        self.table = load(path)  # raises: an invalid table at start is fatal
        self._next = clock() + poll_interval_s
        self._report(valid=True)

    def current(self) -> RouteTable:
        return self.table

    def due(self) -> bool:
        """Time to look at the file again (cheap: the housekeeping loop asks often)."""
        return self._clock() >= self._next

    def poll(self) -> bool | None:
        """Reload if the file changed: True when a new table is in force, False when the new
        version is invalid (the last good table stays), None when nothing changed."""
        self._next = self._clock() + self._interval
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            table = load(self.path)
        except RouteTableError as exc:
            log.error(
                "route table invalid, keeping the last good one",
                extra={"file": self.path, "error": str(exc), "rules": len(self.table)},
            )
            self._report(valid=False, result="invalid")
            return False
        self.table = table
        log.info("route table reloaded", extra={"file": self.path, "rules": len(table)})
        self._report(valid=True, result="ok")
        return True

    def _report(self, *, valid: bool, result: str | None = None) -> None:
        m = self._metrics
        if m is None:
            return
        m.route_table_valid.set(1 if valid else 0)
        m.route_table_rules.set(len(self.table))
        if result is not None:
            m.route_table_reloads.labels(result).inc()


__all__ = ["RouteTableFile", "load"]
