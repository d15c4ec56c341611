"""Several serving processes on the same ports (``NATIVE_IAM_WORKERS``), for both roles.

Each worker binds the role's ports with SO_REUSEPORT, so the kernel spreads connections over
them. The supervising process (the one the orchestrator started):

- opens the merged Prometheus ``/metrics`` listener *before* any worker starts, so a busy metrics
  port stops start-up at once; the workers write their samples to a shared directory
  (``PROMETHEUS_MULTIPROC_DIR``) that it reads;
- forwards SIGTERM and SIGINT to every worker and waits for them (then kills what is left);
- exits 1 as soon as one worker dies on its own: the orchestrator then restarts the whole pod
  cleanly instead of running with fewer workers than configured.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from native_iam.runtime.listen import ListenError, MetricsServer, enabled, serve_metrics

__all__ = ["SPAWN", "Workers", "fixed_port_problem", "run_worker"]

log = logging.getLogger(__name__)

#: Workers start with "spawn": a fresh interpreter, no state (threads, event loops, gRPC) forked
#: from the supervisor. Shared-memory values the workers get must come from this context too.
SPAWN: multiprocessing.context.SpawnContext = multiprocessing.get_context("spawn")

#: How often the supervisor looks for a dead worker.
_POLL_S = 0.2


def fixed_port_problem(listeners: Mapping[str, str]) -> str | None:
    """Several workers must bind one port each listener (SO_REUSEPORT): port 0 would give each
    worker a different one. ``listeners``: variable → address (off listeners are skipped)."""
    for variable, address in listeners.items():
        if enabled(address) and address.rpartition(":")[2] == "0":
            return f"{variable} needs a fixed port when NATIVE_IAM_WORKERS > 1"
    return None


def run_worker(role: str, target: Callable[..., None], *args: Any) -> None:
    """A worker's entry point: ``target(*args)``. A listener that cannot open is one line on
    stderr, as from a single process, and exit 1; the supervisor sees it and stops the others."""
    try:
        target(*args)
    except ListenError as exc:
        print(f"native-iam {role}: {exc}", file=sys.stderr)
        sys.exit(1)


@dataclass
class Workers:
    """Start ``count`` processes running ``run_worker(role, target, *args)`` and supervise them.

    ``metrics_listen`` (and its variable, for the busy-port error) is the merged metrics
    listener; off (see :func:`native_iam.runtime.listen.enabled`) serves none. ``stop_timeout_s``
    is how long the workers get to stop after SIGTERM before they are killed.
    """

    role: str
    target: Callable[..., None]
    args: Sequence[Any]
    count: int
    metrics_listen: str
    metrics_setting: str
    stop_timeout_s: float = 10.0
    processes: list[multiprocessing.process.BaseProcess] = field(default_factory=list, init=False)
    _stopping: bool = field(default=False, init=False)

    def run(self, started: Callable[[Workers], None] | None = None) -> int:
        """Serve until a signal (exit code 0) or a worker's death (1); ``started`` runs once all
        processes are started. Raises ListenError if the metrics port cannot be opened."""
        multiproc_dir = tempfile.mkdtemp(prefix=f"native-iam-{self.role}-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir  # inherited by the spawned workers
        metrics: MetricsServer | None = None
        try:
            metrics = self._serve_metrics()
            self._start()
            if started is not None:
                started(self)
            while self.all_alive() and not self._stopping:
                time.sleep(_POLL_S)
            # Read before stop(), which sets it too: a dead worker (not a signal) is a failure.
            worker_died = not self._stopping
            if worker_died:
                log.error("a worker exited; stopping the others", extra={"role": self.role})
            self.stop()
            self._wait()
            return 1 if worker_died else 0
        finally:
            if metrics is not None:
                metrics.stop()
            shutil.rmtree(multiproc_dir, ignore_errors=True)

    def all_alive(self) -> bool:
        return all(p.is_alive() for p in self.processes)

    def stop(self, _signum: int | None = None, _frame: object = None) -> None:
        """SIGTERM to every live worker (also the SIGTERM/SIGINT handler of the supervisor)."""
        self._stopping = True
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def _serve_metrics(self) -> MetricsServer | None:
        if not enabled(self.metrics_listen):
            return None
        # Imported only now: the multiprocess collector reads PROMETHEUS_MULTIPROC_DIR.
        from prometheus_client import CollectorRegistry, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return serve_metrics(self.metrics_listen, self.metrics_setting, registry)

    def _start(self) -> None:
        self.processes = [
            SPAWN.Process(target=run_worker, args=(self.role, self.target, *self.args), name=f"{self.role}-{i}")
            for i in range(self.count)
        ]
        for process in self.processes:
            process.start()
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _wait(self) -> None:
        deadline = time.monotonic() + self.stop_timeout_s
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("a worker did not stop in time; killing it", extra={"worker": process.name})
                process.kill()
                process.join(5)
