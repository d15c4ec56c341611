"""``native-iam admin clients create|list|get|delete``: manage OAuth clients.

Talks to the database named by ``SYSTEM_DB_URL`` directly (like bootstrapping the first admin),
with the same client-secret key as the service (``NATIVE_IAM_CLIENT_SECRET_KEY``, or the key the
service generated and stored). A new client's secret is printed once and never again: only its
HMAC is stored. Tables by default, ``--json`` for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from token_service import clients
from token_service.clients import AuthMethod, ClientError, GrantType, OAuthClient
from token_service.errors import TokenServiceError
from token_service.settings import Settings, SettingsError
from token_service.store import Store
from token_service.store.clients import ClientRepository, client_secret_key

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="native-iam admin clients", description="Manage OAuth clients.")
    parser.add_argument("--db-url", help="override SYSTEM_DB_URL")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="register a client; prints its secret once")
    create.add_argument("client_id")
    create.add_argument("--name", default="", help="display name")
    create.add_argument(
        "--auth-method",
        choices=[m.value for m in AuthMethod],
        default=AuthMethod.CLIENT_SECRET_BASIC.value,
        help="token endpoint authentication method (default: client_secret_basic; none = public client)",
    )
    create.add_argument(
        "--grant",
        action="append",
        choices=[g.value for g in GrantType],
        help="allowed grant type, repeatable (default: password and refresh_token)",
    )
    create.add_argument(
        "--audience", action="append", default=[], help="`aud` of its tokens, repeatable (default: NATIVE_IAM_AUDIENCE)"
    )
    create.add_argument("--access-token-ttl", type=int, help="access token lifetime, seconds (default: service's)")
    create.add_argument("--refresh-token-ttl", type=int, help="refresh token lifetime, seconds (default: service's)")
    rotation = create.add_mutually_exclusive_group()
    rotation.add_argument("--rotate", dest="rotate", action="store_true", default=None, help="rotate refresh tokens")
    rotation.add_argument("--no-rotate", dest="rotate", action="store_false", help="do not rotate refresh tokens")
    sub.add_parser("list", help="list clients")
    get = sub.add_parser("get", help="show one client")
    get.add_argument("client_id")
    delete = sub.add_parser("delete", help="delete a client (its tokens stay valid until they expire or are revoked)")
    delete.add_argument("client_id")
    return parser


def client_dict(client: OAuthClient) -> dict[str, Any]:
    """The public view of a client: everything but the secret hash."""
    return {
        "client_id": client.client_id,
        "name": client.name,
        "auth_method": client.auth_method.value,
        "grant_types": sorted(g.value for g in client.grant_types),
        "audiences": list(client.audiences),
        "access_token_ttl_s": client.access_token_ttl_s,
        "refresh_token_ttl_s": client.refresh_token_ttl_s,
        "rotate_refresh_tokens": client.rotate_refresh_tokens,
        "created_unix": client.created_at,
    }


def _table(rows: Sequence[dict[str, Any]]) -> str:
    columns = ["client_id", "auth_method", "grant_types", "audiences", "rotate_refresh_tokens", "name"]
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if value not in (None, "") else "-"


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    store = Store(settings.db_url, settings.db_pool_size)
    try:
        await store.migrate()
        repo = ClientRepository(store, cache_ttl_s=0.001)
        if args.command == "create":
            configured = settings.client_secret_key.encode("utf-8") if settings.client_secret_key else None
            key = await client_secret_key(store, configured)
            client, secret = clients.new_client(
                args.client_id,
                auth_method=args.auth_method,
                server_key=key,
                name=args.name,
                grant_types=args.grant or (GrantType.PASSWORD, GrantType.REFRESH_TOKEN),
                audiences=args.audience,
                access_token_ttl_s=args.access_token_ttl,
                refresh_token_ttl_s=args.refresh_token_ttl,
                rotate_refresh_tokens=args.rotate,
            )
            created = client_dict(await repo.create(client))
            if args.json:
                print(json.dumps({**created, "client_secret": secret}))
            else:
                print(_table([created]))
                if secret is not None:
                    print(f"\nclient_secret: {secret}\n(shown once; only its HMAC is stored)")
        elif args.command == "list":
            rows = [client_dict(c) for c in await repo.list()]
            print(json.dumps(rows) if args.json else _table(rows))
        elif args.command == "get":
            row = client_dict(await repo.get(args.client_id))
            print(json.dumps(row) if args.json else _table([row]))
        else:
            await repo.delete(args.client_id)
            print(json.dumps({"deleted": args.client_id}) if args.json else f"deleted client {args.client_id}")
        return 0
    finally:
        await store.close()


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(**({"db_url": args.db_url} if args.db_url else {}))
        return asyncio.run(_run(args, settings))
    except SettingsError as exc:
        print(f"native-iam admin clients: configuration error: {exc}", file=sys.stderr)
        return 2
    except (ClientError, TokenServiceError) as exc:
        print(f"native-iam admin clients: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
