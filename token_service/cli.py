"""``native-iam token-service``: run the central token service until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys

from token_service import logs
from token_service.app import TokenServiceApp
from token_service.bootstrap import DEMO_IDENTITY, bootstrap_admin, bootstrap_demo
from token_service.settings import Settings, SettingsError

__all__ = ["main"]

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="native-iam token-service",
        description="Run the token service (gRPC OAuth/Feed/admin, metrics). Configured by environment "
        "variables (see README); the options below override them.",
    )
    parser.add_argument(
        "--demo", action="store_true", help="also create a demo identity (and an admin) and print how to call it"
    )
    parser.add_argument("--db-url", help="override SYSTEM_DB_URL")
    parser.add_argument("--grpc-listen", help="override NATIVE_IAM_GRPC_LISTEN")
    parser.add_argument("--metrics-listen", help="override NATIVE_IAM_METRICS_LISTEN ('off' to disable)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    overrides = {
        k: v
        for k, v in {
            "db_url": args.db_url,
            "grpc_listen": args.grpc_listen,
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
    try:
        asyncio.run(_serve(settings, args.demo))
    except SettingsError as exc:
        print(f"native-iam token-service: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


async def _serve(settings: Settings, demo: bool) -> None:
    app = TokenServiceApp(settings)
    await app.start()
    try:
        admin_name, admin_password = settings.bootstrap_admin, settings.bootstrap_admin_password
        if demo and not admin_name:
            admin_name, admin_password = "admin", secrets.token_urlsafe(12)
        if admin_name and admin_password:
            async with app.core.store.startup_lock():
                await bootstrap_admin(app.core, admin_name, admin_password)
            log.info("bootstrap admin ready", extra={"identity": admin_name})
        if demo:
            _, demo_password = await bootstrap_demo(app.core)
            print(
                _demo_banner(
                    app.grpc_target,
                    admin_name or "",
                    admin_password if not settings.bootstrap_admin else None,
                    demo_password,
                ),
                flush=True,
            )
    except BaseException:
        await app.stop(0)
        raise
    await app.run_until_signal()


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
