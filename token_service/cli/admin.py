"""``native-iam admin …``: the admin gRPC API from a terminal (tables, or ``--json``).

Talks to the token service at ``--url`` (or NATIVE_IAM_ADMIN_URL, default localhost:50051) with
the bearer token from ``--token`` (or NATIVE_IAM_ADMIN_TOKEN). ``native-iam admin token`` gets
such a token by password; ``native-iam admin bootstrap`` creates the first admin directly in the
database named by SYSTEM_DB_URL. Passwords are read from stdin or a prompt, never from argv.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from native_iam.admin.v1 import admin_pb2 as pb
from native_iam.admin.v1 import admin_pb2_grpc
from native_iam.envdoc import EnvVar
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from token_service.cli import clients as clients_cli

__all__ = ["ENV_VARS", "main"]

_DEFAULT_URL = "localhost:50051"
#: The variables this CLI reads (rendered into docs/configuration.md).
ADMIN_URL = EnvVar(
    "NATIVE_IAM_ADMIN_URL", "`native-iam admin`: the token service's gRPC address (`--url`)", f"`{_DEFAULT_URL}`"
)
ADMIN_TOKEN = EnvVar("NATIVE_IAM_ADMIN_TOKEN", "`native-iam admin`: an access token with `iam:admin` (`--token`)")
ENV_VARS = (ADMIN_URL, ADMIN_TOKEN)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="native-iam admin", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get(ADMIN_URL.name, _DEFAULT_URL), help="token service gRPC address")
    p.add_argument("--token", default=None, help="admin access token (default: $NATIVE_IAM_ADMIN_TOKEN)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    sub = p.add_subparsers(dest="group", required=True)

    def who(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", help="identity name")
        parser.add_argument("-n", "--namespace", default="", help="namespace (default: global)")

    def password_source(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    t = sub.add_parser("token", help="get an admin access token by password (prints it)")
    who(t)
    password_source(t)

    b = sub.add_parser("bootstrap", help="create an admin identity directly in the database (SYSTEM_DB_URL)")
    b.add_argument("name", help="admin identity name (global)")
    password_source(b)

    ids = sub.add_parser("identities", help="identities").add_subparsers(dest="command", required=True)
    lst = ids.add_parser("list")
    lst.add_argument("-n", "--namespace", default=None)
    lst.add_argument("--page-size", type=int, default=100)
    lst.add_argument("--page-token", default="")
    who(ids.add_parser("get"))
    create = ids.add_parser("create")
    who(create)
    create.add_argument("--policy", nargs="*", default=[], help="policy entries: scope, prefix:*, *")
    create.add_argument("--with-password", action="store_true", help="also set a password (prompt or --password-stdin)")
    password_source(create)
    create.add_argument("--disabled", action="store_true")
    for name in ("enable", "disable", "delete"):
        who(ids.add_parser(name))

    pw = sub.add_parser("passwords", help="password authentication").add_subparsers(dest="command", required=True)
    pw_set = pw.add_parser("set")
    who(pw_set)
    password_source(pw_set)
    for name in ("enable", "disable"):
        who(pw.add_parser(name))

    pol = sub.add_parser("policies", help="scope policies").add_subparsers(dest="command", required=True)
    pol_set = pol.add_parser("set", help="replace the policy")
    who(pol_set)
    pol_set.add_argument("entries", nargs="*", help="scope, prefix:* or *")

    tok = sub.add_parser("tokens", help="issued tokens").add_subparsers(dest="command", required=True)
    tl = tok.add_parser("list")
    tl.add_argument("-n", "--namespace", default=None)
    tl.add_argument("-i", "--identity", default=None)
    tl.add_argument("--page-size", type=int, default=100)
    tl.add_argument("--page-token", default="")
    for name in ("enable", "disable", "delete"):
        tok.add_parser(name).add_argument("jti")

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="command", required=True)
    keys.add_parser("list")
    rotate = keys.add_parser("rotate")
    rotate.add_argument("--delay", type=int, default=None, help="publish delay, seconds (default: the server's)")
    keys.add_parser("retire").add_argument("kid")

    clients_cli.add_parser(sub)  # OAuth clients (issue 3)
    return p


def _read_password(args: argparse.Namespace, stdin: TextIO) -> str:
    password = stdin.readline().rstrip("\r\n") if args.password_stdin else getpass.getpass("password: ")
    if not password:
        raise SystemExit("native-iam admin: empty password")
    return password


#: Commands whose one argument is an id the service generated: a jti, or a key id (an RFC 7638
#: thumbprint). Both are base64url and may begin with "-" (key ids always can; jtis issued before
#: new_jti avoided it); argparse would take that for an unknown option.
_ID_COMMANDS = frozenset({("tokens", "enable"), ("tokens", "disable"), ("tokens", "delete"), ("keys", "retire")})


def _ids_as_arguments(argv: list[str]) -> list[str]:
    """``argv`` with "--" put before a generated id that begins with "-", so that
    `tokens disable -AbC…` works as docs/token-service.md shows it (an explicit "--" works anyway)."""
    for i in range(len(argv) - 2):
        if (argv[i], argv[i + 1]) in _ID_COMMANDS:
            value = argv[i + 2]
            if value.startswith("-") and value not in {"--", "-h", "--help"}:
                return [*argv[: i + 2], "--", *argv[i + 2 :]]
            break
    return argv


def main(argv: Sequence[str], stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    args = _parser().parse_args(_ids_as_arguments(list(argv)))
    if args.group == "bootstrap":
        return _bootstrap(args.name, _read_password(args, stdin), stdout)
    with grpc.insecure_channel(args.url) as channel:
        try:
            if args.group == "token":
                return _token(channel, args, _read_password(args, stdin), stdout)
            token = args.token or os.environ.get(ADMIN_TOKEN.name, "")
            if not token:
                print("native-iam admin: an admin token is needed: --token or NATIVE_IAM_ADMIN_TOKEN", file=sys.stderr)
                return 2
            metadata = (("authorization", f"Bearer {token}"),)
            call = _Caller(channel, metadata, args.timeout)
            result, render = _dispatch(call, args, stdin)
        except grpc.RpcError as exc:
            print(f"native-iam admin: {exc.code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
            return 1
    if args.json:
        print(
            json.dumps(MessageToDict(result, preserving_proto_field_name=True), indent=2, sort_keys=True), file=stdout
        )
    else:
        render(result, stdout)
    return 0


class _Caller:
    def __init__(self, channel: grpc.Channel, metadata: tuple[tuple[str, str], ...], timeout: float) -> None:
        self.identities = admin_pb2_grpc.IdentitiesStub(channel)
        self.tokens = admin_pb2_grpc.TokensStub(channel)
        self.keys = admin_pb2_grpc.KeysStub(channel)
        self.clients = admin_pb2_grpc.ClientsStub(channel)  # OAuth clients (issue 3)
        self.kw = {"metadata": metadata, "timeout": timeout}


def _dispatch(call: _Caller, args: argparse.Namespace, stdin: TextIO) -> tuple[Message, Callable[[Any, TextIO], None]]:
    kw = call.kw
    if args.group == "clients":  # OAuth clients (issue 3)
        return clients_cli.dispatch(call.clients, kw, args)
    if args.group in {"identities", "passwords", "policies"} and hasattr(args, "name"):
        ref = pb.IdentityRef(namespace=args.namespace, name=args.name)
    if args.group == "identities":
        if args.command == "list":
            request = pb.ListIdentitiesRequest(page_size=args.page_size, page_token=args.page_token)
            if args.namespace is not None:
                request.namespace = args.namespace
            return call.identities.ListIdentities(request, **kw), _identities_table
        if args.command == "get":
            return call.identities.GetIdentity(ref, **kw), _identity_table
        if args.command == "create":
            password = _read_password(args, stdin) if args.with_password or args.password_stdin else ""
            request = pb.CreateIdentityRequest(
                namespace=args.namespace, name=args.name, password=password, policy=args.policy, disabled=args.disabled
            )
            return call.identities.CreateIdentity(request, **kw), _identity_table
        if args.command in {"enable", "disable"}:
            request = pb.SetIdentityEnabledRequest(identity=ref, enabled=args.command == "enable")
            return call.identities.SetIdentityEnabled(request, **kw), _identity_table
        return call.identities.DeleteIdentity(ref, **kw), _done
    if args.group == "passwords":
        if args.command == "set":
            request = pb.SetPasswordRequest(identity=ref, password=_read_password(args, stdin))
            return call.identities.SetPassword(request, **kw), _done
        request = pb.SetPasswordEnabledRequest(identity=ref, enabled=args.command == "enable")
        return call.identities.SetPasswordEnabled(request, **kw), _done
    if args.group == "policies":
        return call.identities.SetPolicy(pb.SetPolicyRequest(identity=ref, policy=args.entries), **kw), _identity_table
    if args.group == "tokens":
        if args.command == "list":
            request = pb.ListTokensRequest(page_size=args.page_size, page_token=args.page_token)
            if args.namespace is not None:
                request.namespace = args.namespace
            if args.identity is not None:
                request.identity = args.identity
            return call.tokens.ListTokens(request, **kw), _tokens_table
        if args.command in {"enable", "disable"}:
            request = pb.SetTokenEnabledRequest(jti=args.jti, enabled=args.command == "enable")
            return call.tokens.SetTokenEnabled(request, **kw), _done
        return call.tokens.DeleteToken(pb.DeleteTokenRequest(jti=args.jti), **kw), _done
    if args.command == "list":
        return call.keys.ListKeys(pb.ListKeysRequest(), **kw), _keys_table
    if args.command == "rotate":
        request = pb.RotateKeyRequest()
        if args.delay is not None:
            request.publish_delay_s = args.delay
        response = call.keys.RotateKey(request, **kw)
        return response, lambda r, out: _keys_table(pb.ListKeysResponse(keys=[r.key]), out)
    response = call.keys.RetireKey(pb.RetireKeyRequest(kid=args.kid), **kw)
    return response, lambda r, out: _keys_table(pb.ListKeysResponse(keys=[r.signing_key]), out)


def _token(channel: grpc.Channel, args: argparse.Namespace, password: str, stdout: TextIO) -> int:
    response = oauth_pb2_grpc.OAuthStub(channel).CreateTokenWithPassword(
        oauth_pb2.CreateTokenWithPasswordRequest(
            namespace=args.namespace, identity=args.name, password=password, scopes=["iam:admin"]
        ),
        timeout=args.timeout,
    )
    if response.status != oauth_pb2.CreateTokenWithPasswordResponse.OK:
        name = oauth_pb2.CreateTokenWithPasswordResponse.Status.Name(response.status)
        print(f"native-iam admin: no token: {name}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"access_token": response.access_token, "expires_in": response.expires_in}), file=stdout)
    else:
        print(response.access_token, file=stdout)
    return 0


def _bootstrap(name: str, password: str, stdout: TextIO) -> int:
    from token_service.cli.bootstrap import bootstrap_admin
    from token_service.core import Core
    from token_service.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"native-iam admin: configuration error: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        core = Core.build(settings)
        try:
            await core.store.migrate()
            async with core.store.startup_lock():
                await bootstrap_admin(core, name, password)
        finally:
            await core.close()

    asyncio.run(run())
    print(
        f"admin identity {name!r} ready (policy iam:admin); get a token with: native-iam admin token {name}",
        file=stdout,
    )
    return 0


# --- tables ----------------------------------------------------------------------------------


def _table(rows: list[list[str]], headers: list[str], out: TextIO) -> None:
    widths = (
        [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
        if rows
        else [len(h) for h in headers]
    )
    for row in [headers, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip(), file=out)


def _identity_rows(items: Sequence[pb.Identity]) -> list[list[str]]:
    return [
        [
            i.namespace or "-",
            i.name,
            "enabled" if i.enabled else "disabled",
            ("on" if i.password_enabled else "off") if i.has_password else "none",
            " ".join(i.policy) or "-",
        ]
        for i in items
    ]


_IDENTITY_HEADERS = ["NAMESPACE", "NAME", "STATE", "PASSWORD", "POLICY"]


def _identities_table(response: pb.ListIdentitiesResponse, out: TextIO) -> None:
    _table(_identity_rows(response.identities), _IDENTITY_HEADERS, out)
    if response.next_page_token:
        print(f"next page: --page-token {response.next_page_token}", file=out)


def _identity_table(identity: pb.Identity, out: TextIO) -> None:
    _table(_identity_rows([identity]), _IDENTITY_HEADERS, out)


def _tokens_table(response: pb.ListTokensResponse, out: TextIO) -> None:
    import datetime

    def when(unix: int) -> str:
        return datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")

    rows = [
        [
            t.jti,
            t.usage,
            f"{t.namespace + '/' if t.namespace else ''}{t.identity}",
            " ".join(t.scopes) or "-",
            t.metadata[:40] or "-",
            when(t.created_unix),
            when(t.expires_unix),
            t.state,
        ]
        for t in response.tokens
    ]
    _table(rows, ["JTI", "USAGE", "IDENTITY", "SCOPES", "METADATA", "CREATED", "EXPIRES", "STATE"], out)
    if response.next_page_token:
        print(f"next page: --page-token {response.next_page_token}", file=out)


def _keys_table(response: pb.ListKeysResponse, out: TextIO) -> None:
    rows = [
        [
            k.kid,
            k.alg,
            "signing" if k.signing else ("retired" if k.retire_unix else "published"),
            str(k.activate_unix),
            str(k.retire_unix or "-"),
            str(k.expire_unix or "-"),
            k.source,
        ]
        for k in response.keys
    ]
    _table(rows, ["KID", "ALG", "STATE", "ACTIVATES", "RETIRES", "UNPUBLISHED", "SOURCE"], out)


def _done(_: Message, out: TextIO) -> None:
    print("ok", file=out)
