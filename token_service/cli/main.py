"""``native-iam token-service``: run the central token service until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import secrets
import sys

from native_iam.runtime import health, logs
from native_iam.runtime.listen import ListenError, raise_open_file_limit
from native_iam.runtime.workers import SPAWN, Workers, fixed_port_problem
from token_service.app import TokenServiceApp
from token_service.cli.bootstrap import DEMO_IDENTITY, bootstrap_admin, bootstrap_demo
from token_service.core import Core
from token_service.settings import METRICS_LISTEN, Settings, SettingsError

__all__ = ["main"]

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="native-iam token-service",
        description="Run the token service (gRPC OAuth/Feed/admin, metrics). Configured by environment "
        "variables (see docs/configuration.md); the options below override them.",
    )
    parser.add_argument(
        "--demo", action="store_true", help="also create a demo identity (and an admin) and print how to call it"
    )
    parser.add_argument("--db-url", help="override SYSTEM_DB_URL")
    parser.add_argument("--grpc-listen", help="override NATIVE_IAM_GRPC_LISTEN")
    parser.add_argument("--http-listen", help="override NATIVE_IAM_HTTP_LISTEN (the OAuth 2.0 HTTP endpoints)")
    parser.add_argument("--metrics-listen", help="override NATIVE_IAM_METRICS_LISTEN ('off' to disable)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    overrides = {
        k: v
        for k, v in {
            "db_url": args.db_url,
            "grpc_listen": args.grpc_listen,
            "http_listen": args.http_listen,
            "metrics_listen": args.metrics_listen,
        }.items()
        if v
    }
    try:
        settings = Settings.from_env(**overrides)
    except SettingsError as exc:
        print(f"native-iam token-service: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    raise_open_file_limit()  # inherited by the workers
    try:
        if settings.workers > 1:
            return _run_workers(settings, args.demo)
        asyncio.run(_serve(settings, args.demo))
    except SettingsError as exc:
        print(f"native-iam token-service: configuration error: {exc}", file=sys.stderr)
        return 2
    except ListenError as exc:
        print(f"native-iam token-service: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


async def _serve(settings: Settings, demo: bool, revocations_seen: object = None) -> None:
    app = TokenServiceApp(settings)
    app.core.checks.shared = revocations_seen
    try:
        await app.start()
        banner = await _bootstrap(app.core, settings, demo, app.grpc_target)
        if banner:
            print(banner, flush=True)
    except BaseException:
        await app.stop(0)
        raise
    await app.run_until_signal()


async def _bootstrap(core: Core, settings: Settings, demo: bool, target: str) -> str | None:
    """Create the bootstrap admin and, with ``--demo``, the demo identity; return the demo banner."""
    admin_name, admin_password = settings.bootstrap_admin, settings.bootstrap_admin_password
    if demo and not admin_name:
        admin_name, admin_password = "admin", secrets.token_urlsafe(12)
    if admin_name and admin_password:
        async with core.store.startup_lock():
            await bootstrap_admin(core, admin_name, admin_password)
        log.info("bootstrap admin ready", extra={"identity": admin_name})
    if not demo:
        return None
    _, demo_password = await bootstrap_demo(core)
    return _demo_banner(
        target, admin_name or "", admin_password if not settings.bootstrap_admin else None, demo_password
    )


# --- several workers -----------------------------------------------------------------------


def _run_workers(settings: Settings, demo: bool) -> int:
    """NATIVE_IAM_WORKERS > 1: prepare once, then run that many serving processes on the same
    ports (native_iam/runtime/workers.py). This process supervises them, forwards SIGTERM, and
    serves their merged metrics."""
    problem = fixed_port_problem(
        {"NATIVE_IAM_GRPC_LISTEN": settings.grpc_listen, "NATIVE_IAM_HTTP_LISTEN": settings.http_listen}
    )
    if problem:
        print(f"native-iam token-service: {problem}", file=sys.stderr)
        return 2
    target = _local_target(settings.grpc_listen)
    # Migrations, the first signing key and the bootstrap identities: once, before any worker,
    # so that workers never race to create them.
    banner = asyncio.run(_prepare(settings, demo, target))
    # CheckAccess caches of all workers: a revocation committed by one voids the others' at once.
    revocations_seen = SPAWN.Value("Q", 0)

    def started(workers: Workers) -> None:
        if banner and health.wait_serving(target, 60, workers.all_alive):
            print(banner, flush=True)
        log.info("token service workers started", extra={"workers": settings.workers, "grpc": target})

    workers = Workers(
        role="token-service",
        target=_worker,
        args=(_worker_settings(settings), revocations_seen),
        count=settings.workers,
        metrics_listen=settings.metrics_listen,
        metrics_setting=METRICS_LISTEN,
        stop_timeout_s=settings.shutdown_grace_s + 10,
    )
    return workers.run(started)


async def _prepare(settings: Settings, demo: bool, target: str) -> str | None:
    core = Core.build(settings)
    try:
        await core.start()
        return await _bootstrap(core, settings, demo, target)
    finally:
        await core.close()


def _worker_settings(settings: Settings) -> Settings:
    """What each of several workers runs with: no metrics listener of its own (the supervisor
    serves the merged metrics), and argon2 threads shared out so that all workers together run
    one per core (more only queue for the cores and cost NATIVE_IAM_ARGON2_MEMORY_KIB each)."""
    password_workers = settings.password_workers or max(1, (os.cpu_count() or 1) // settings.workers)
    return dataclasses.replace(settings, metrics_listen="off", password_workers=password_workers)


def _worker(settings: Settings, revocations_seen: object) -> None:
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(_serve(settings, demo=False, revocations_seen=revocations_seen))


def _local_target(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"{'127.0.0.1' if host in {'0.0.0.0', '[::]', '::', ''} else host}:{port}"


def _demo_banner(target: str, admin: str, admin_password: str | None, demo_password: str) -> str:
    shown_admin = admin_password if admin_password else "(from NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD)"
    return f"""
native-iam token service is running on {target} (gRPC, with reflection).

  demo identity : {DEMO_IDENTITY} / {demo_password}   policy: orders:read orders:write profile:*
  admin identity: {admin} / {shown_admin}   policy: iam:admin

Get a token (grpcurl: https://github.com/fullstorydev/grpcurl):
  grpcurl -plaintext -d '{{"identity":"{DEMO_IDENTITY}","password":"{demo_password}"}}' \\
      {target} native_iam.oauth.v1.OAuth/CreateTokenWithPassword
Check it:
  grpcurl -plaintext -d '{{"access_token":"<accessToken>","scopes":["orders:read"]}}' \\
      {target} native_iam.oauth.v1.OAuth/CheckAccess
Refresh it:
  grpcurl -plaintext -d '{{"refresh_token":"<refreshToken>"}}' {target} native_iam.oauth.v1.OAuth/RefreshToken
Public keys:
  grpcurl -plaintext {target} native_iam.oauth.v1.Feed/GetJwks

Stop with Ctrl-C (SIGINT) or SIGTERM.
"""
