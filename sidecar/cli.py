"""``native-iam sidecar``: run the ext_authz sidecar (one or NATIVE_IAM_WORKERS processes).

Configuration comes from the environment only (see docs/configuration.md). With several
workers (native_iam/runtime/workers.py), each process binds the same ports with SO_REUSEPORT
(the kernel spreads connections) and keeps its own caches and feed subscription; this process
only supervises them and serves the merged metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from native_iam.runtime import logs
from native_iam.runtime.env import warn_renamed
from native_iam.runtime.listen import ListenError, enabled, raise_open_file_limit, serve_metrics
from native_iam.runtime.workers import Workers, fixed_port_problem

from .route_table_file import RouteTableError
from .route_table_file import load as load_route_table
from .settings import Settings, SettingsError, from_env

log = logging.getLogger(__name__)

_METRICS_LISTEN = "NATIVE_IAM_METRICS_LISTEN"


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="native-iam sidecar",
        description="Envoy ext_authz sidecar: verifies bearer tokens locally, checks route scopes and "
        "revocations, serves the OAuth API to its workload. Configured by NATIVE_IAM_* environment "
        "variables (see docs/configuration.md).",
    )


def _serve(settings: Settings, reuse_port: bool = False) -> None:
    """One serving process (the only one, or a worker in its own spawned interpreter)."""
    from . import server  # after PROMETHEUS_MULTIPROC_DIR is set: it fixes how metrics are stored

    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(server.serve(settings, reuse_port=reuse_port))


def _run_workers(settings: Settings) -> int:
    problem = fixed_port_problem(
        {
            "NATIVE_IAM_AUTHZ_LISTEN": settings.authz_listen,
            "NATIVE_IAM_AUTHZ_HTTP_LISTEN": settings.authz_http_listen,
            "NATIVE_IAM_OAUTH_LISTEN": settings.oauth_listen,
        }
    )
    if problem:
        print(f"native-iam sidecar: {problem}", file=sys.stderr)
        return 2
    workers = Workers(
        role="sidecar",
        target=_serve,
        args=(settings, True),
        count=settings.workers,
        metrics_listen=settings.metrics_listen,
        metrics_setting=_METRICS_LISTEN,
    )
    return workers.run()


def main(argv: list[str]) -> int:
    _parser().parse_args(argv)
    try:
        settings = from_env()
    except SettingsError as exc:
        print(f"native-iam sidecar: {exc}", file=sys.stderr)
        return 2
    if settings.route_table_file:
        try:
            load_route_table(settings.route_table_file)
        except RouteTableError as exc:
            # Like a bad setting: no sidecar deciding by a table other than the configured one.
            print(f"native-iam sidecar: NATIVE_IAM_ROUTE_TABLE_FILE: {exc}", file=sys.stderr)
            return 2
    logs.configure(settings.log_level, settings.log_format)
    warn_renamed(settings.renamed, log)
    raise_open_file_limit()  # inherited by the workers
    try:
        if settings.workers > 1:
            return _run_workers(settings)
        if enabled(settings.metrics_listen):
            serve_metrics(settings.metrics_listen, _METRICS_LISTEN)
        _serve(settings)
    except ListenError as exc:
        print(f"native-iam sidecar: {exc}", file=sys.stderr)
        return 1
    return 0
