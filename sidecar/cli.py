"""``native-iam sidecar``: run the ext_authz sidecar (one or NATIVE_IAM_WORKERS processes).

Configuration comes from the environment only (see README, "Configuration"). With several
workers, each process binds the same ports with SO_REUSEPORT (the kernel spreads connections)
and keeps its own caches and feed subscription; this process only supervises them and serves
the merged metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time

from native_iam.listen import ListenError, raise_open_file_limit, serve_metrics

from .settings import Settings, SettingsError, from_env


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="native-iam sidecar",
        description="Envoy ext_authz sidecar: verifies bearer tokens locally, checks route scopes and "
        "revocations, serves the OAuth API to its workload. Configured by NATIVE_IAM_* environment "
        "variables (see README).",
    )


_METRICS_LISTEN = "NATIVE_IAM_METRICS_LISTEN"


def _worker(settings: Settings, multiproc_dir: str) -> None:
    # Runs in a spawned process: set up logging and the metrics mode before anything is imported.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    from . import _logging, server

    _logging.configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(server.serve(settings, reuse_port=True))
    except ListenError as exc:
        # One line, as from a single process; the supervisor sees the exit and stops the others.
        print(f"native-iam sidecar: {exc}", file=sys.stderr)
        sys.exit(1)


def _run_workers(settings: Settings) -> int:
    multiproc_dir = tempfile.mkdtemp(prefix="native-iam-sidecar-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    from prometheus_client import CollectorRegistry, multiprocess

    if settings.metrics_listen:
        # The merged metrics listener opens before any worker starts, so a busy port stops here.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        try:
            serve_metrics(settings.metrics_listen, _METRICS_LISTEN, registry)
        except ListenError:
            shutil.rmtree(multiproc_dir, ignore_errors=True)
            raise
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_worker, args=(settings, multiproc_dir), name=f"worker-{i}") for i in range(settings.workers)
    ]
    for worker in workers:
        worker.start()
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        # A worker that dies takes the sidecar down: Kubernetes restarts the pod cleanly.
        while all(w.is_alive() for w in workers) and not stopping:
            time.sleep(0.2)
        # Read before stop() below, which sets it too: a dead worker (not a signal) is a failure.
        worker_died = not stopping
        stop(signal.SIGTERM, None)
        for worker in workers:
            worker.join(10)
    finally:
        shutil.rmtree(multiproc_dir, ignore_errors=True)
    return 1 if worker_died else 0


def main(argv: list[str]) -> int:
    _parser().parse_args(argv)
    try:
        settings = from_env()
    except SettingsError as exc:
        print(f"native-iam sidecar: {exc}", file=sys.stderr)
        return 2
    raise_open_file_limit()  # inherited by the workers
    try:
        if settings.workers > 1:
            return _run_workers(settings)
        from . import _logging, server

        _logging.configure(settings.log_level, settings.log_format)
        if settings.metrics_listen:
            serve_metrics(settings.metrics_listen, _METRICS_LISTEN)
        asyncio.run(server.serve(settings))
    except ListenError as exc:
        print(f"native-iam sidecar: {exc}", file=sys.stderr)
        return 1
    return 0
