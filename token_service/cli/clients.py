"""``native-iam admin clients create|list|get|delete|enable|disable|set-scopes|set-redirects|
consents|revoke-consent``: OAuth clients and the consents users gave them, through the admin gRPC
API.

Plugged into :mod:`token_service.cli.admin` (same ``--url``, ``--token``, ``--json``): this module
only defines the ``clients`` sub-commands, builds their requests and renders their tables. A new
client's secret is printed once, by ``create``; nothing else ever shows it (only its HMAC is
stored).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TextIO

from google.protobuf.message import Message

from native_iam.admin.v1 import admin_pb2 as pb
from native_iam.admin.v1 import admin_pb2_grpc
from token_service.clients import AuthMethod, GrantType

__all__ = ["add_parser", "dispatch"]

Render = Callable[[Any, TextIO], None]


def add_parser(sub: Any) -> None:
    """Add the ``clients`` group to ``native-iam admin``'s sub-parsers."""
    group = sub.add_parser("clients", help="OAuth clients of the HTTP token endpoint")
    commands = group.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="register a client; prints its secret once")
    create.add_argument("client_id")
    create.add_argument("--name", default="", help="display name")
    create.add_argument(
        "--auth-method",
        choices=[m.value for m in AuthMethod],
        default=AuthMethod.CLIENT_SECRET_BASIC.value,
        help="token endpoint authentication method (default: client_secret_basic; none = public client;"
        " kubernetes_service_account = a workload's service-account token, mapped by NATIVE_IAM_CLUSTER_ISSUERS_FILE)",
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
    create.add_argument("--access-token-ttl", type=int, default=0, help="seconds (default: the service's)")
    create.add_argument("--refresh-token-ttl", type=int, default=0, help="seconds (default: the service's)")
    rotation = create.add_mutually_exclusive_group()
    rotation.add_argument("--rotate", dest="rotate", action="store_true", default=None, help="rotate refresh tokens")
    rotation.add_argument("--no-rotate", dest="rotate", action="store_false", help="do not rotate refresh tokens")
    create.add_argument(
        "--introspect-all",
        action="store_true",
        help="may introspect every token (a resource server); default: only its own and its audiences'",
    )
    _redirect_arguments(create)
    create.add_argument("--first-party", action="store_true", help="the service's own application: no consent page")
    redirects = commands.add_parser(
        "set-redirects", help="replace a client's redirect URIs and post-logout redirect URIs"
    )
    redirects.add_argument("client_id")
    _redirect_arguments(redirects)
    party = redirects.add_mutually_exclusive_group()
    party.add_argument("--first-party", dest="first_party", action="store_true", default=None, help="no consent page")
    party.add_argument("--third-party", dest="first_party", action="store_false", help="ask users for consent")
    listing = commands.add_parser("consents", help="list the consents users gave clients")
    listing.add_argument("--client", default="", help="only this client")
    listing.add_argument("--namespace", default=None, help="only this namespace ('' = global)")
    listing.add_argument("--identity", default=None, help="only this identity")
    revoke = commands.add_parser("revoke-consent", help="forget a consent: the next authorization asks again")
    revoke.add_argument("identity")
    revoke.add_argument("--namespace", default="", help="the identity's namespace (default: global)")
    revoke.add_argument("--client", default="", help="only this client (default: every client)")
    create.add_argument(
        "--scope",
        action="append",
        default=[],
        help="scope policy entry for client_credentials (scope, prefix:* or *), repeatable (default: none)",
    )
    create.add_argument(
        "--exchange-audience",
        action="append",
        default=[],
        help="audience it may exchange users' tokens for (RFC 8693; needs --grant"
        " urn:ietf:params:oauth:grant-type:token-exchange), repeatable",
    )
    commands.add_parser("list", help="list clients")
    commands.add_parser("get", help="show one client").add_argument("client_id")
    commands.add_parser("delete", help="delete a client and revoke every token it obtained").add_argument("client_id")
    commands.add_parser("enable", help="enable a client (its tokens revoked by disable pass again)").add_argument(
        "client_id"
    )
    commands.add_parser("disable", help="disable a client and revoke every token it obtained").add_argument("client_id")
    scopes = commands.add_parser("set-scopes", help="replace a client's scope policy (client_credentials)")
    scopes.add_argument("client_id")
    scopes.add_argument("scopes", nargs="*", help="policy entries (scope, prefix:* or *); none clears it")


def _redirect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redirect-uri", action="append", default=[], help="exact redirect URI (authorization code), repeatable"
    )
    parser.add_argument(
        "--post-logout-redirect-uri", action="append", default=[], help="exact post-logout redirect URI, repeatable"
    )


def dispatch(stub: admin_pb2_grpc.ClientsStub, kw: dict[str, Any], args: argparse.Namespace) -> tuple[Message, Render]:
    """Call the RPC for ``args`` and return its response and how to print it as a table."""
    if args.command == "create":
        request = pb.CreateClientRequest(
            client_id=args.client_id,
            name=args.name,
            token_endpoint_auth_method=args.auth_method,
            grant_types=args.grant or [],
            audiences=args.audience,
            access_token_ttl_s=args.access_token_ttl,
            refresh_token_ttl_s=args.refresh_token_ttl,
            introspect_all_tokens=args.introspect_all,
            scopes=args.scope,
            redirect_uris=args.redirect_uri,
            post_logout_redirect_uris=args.post_logout_redirect_uri,
            first_party=args.first_party,
            exchange_audiences=args.exchange_audience,
        )
        if args.rotate is not None:
            request.rotate_refresh_tokens = args.rotate
        return stub.CreateClient(request, **kw), _created
    if args.command == "set-redirects":
        update = pb.SetClientRedirectUrisRequest(
            client_id=args.client_id,
            redirect_uris=args.redirect_uri,
            post_logout_redirect_uris=args.post_logout_redirect_uri,
        )
        if args.first_party is not None:
            update.first_party = args.first_party
        return stub.SetClientRedirectUris(update, **kw), lambda r, out: _table([r], out, redirects=True)
    if args.command == "consents":
        query = pb.ListConsentsRequest(client_id=args.client)
        if args.namespace is not None:
            query.namespace = args.namespace
        if args.identity is not None:
            query.identity = args.identity
        return stub.ListConsents(query, **kw), _consents
    if args.command == "revoke-consent":
        revoke = pb.RevokeConsentRequest(namespace=args.namespace, identity=args.identity, client_id=args.client)
        return stub.RevokeConsent(revoke, **kw), lambda r, out: print(f"revoked {r.revoked}", file=out)
    if args.command == "list":
        return stub.ListClients(pb.ListClientsRequest(), **kw), lambda r, out: _table(list(r.clients), out)
    if args.command == "get":
        return stub.GetClient(pb.ClientRef(client_id=args.client_id), **kw), lambda r, out: _table([r], out)
    if args.command in ("enable", "disable"):
        request = pb.SetClientEnabledRequest(client_id=args.client_id, enabled=args.command == "enable")
        return stub.SetClientEnabled(request, **kw), lambda r, out: _table([r], out)
    if args.command == "set-scopes":
        request = pb.SetClientScopesRequest(client_id=args.client_id, scopes=args.scopes)
        return stub.SetClientScopes(request, **kw), lambda r, out: _table([r], out)
    return stub.DeleteClient(pb.ClientRef(client_id=args.client_id), **kw), _deleted


def _consents(response: pb.ListConsentsResponse, out: TextIO) -> None:
    rows = [["NAMESPACE", "IDENTITY", "CLIENT_ID", "SCOPES"]]
    rows += [[c.namespace or "-", c.identity, c.client_id, " ".join(c.scopes) or "-"] for c in response.consents]
    _print_rows(rows, out)


_COLUMNS = (
    "CLIENT_ID",
    "AUTH_METHOD",
    "GRANTS",
    "AUDIENCES",
    "ACCESS_TTL",
    "REFRESH_TTL",
    "ROTATE",
    "INTROSPECT",
    "ENABLED",
    "SCOPES",
    "FIRST_PARTY",
    "EXCHANGE_AUDIENCES",
    "NAME",
)


def _row(client: pb.OAuthClient) -> list[str]:
    return [
        client.client_id,
        client.token_endpoint_auth_method,
        ",".join(client.grant_types) or "-",
        ",".join(client.audiences) or "(default)",
        str(client.access_token_ttl_s or "(default)"),
        str(client.refresh_token_ttl_s or "(default)"),
        "yes" if client.rotate_refresh_tokens else "no",
        "all" if client.introspect_all_tokens else "own",
        "yes" if client.enabled else "no",
        ",".join(client.scopes) or "-",
        "yes" if client.first_party else "no",
        ",".join(client.exchange_audiences) or "-",
        client.name or "-",
    ]


def _table(clients: list[pb.OAuthClient], out: TextIO, *, redirects: bool = False) -> None:
    _print_rows([list(_COLUMNS), *(_row(c) for c in clients)], out)
    for client in clients if redirects or len(clients) == 1 else ():
        for uri in client.redirect_uris:
            print(f"redirect_uri: {uri}", file=out)
        for uri in client.post_logout_redirect_uris:
            print(f"post_logout_redirect_uri: {uri}", file=out)


def _print_rows(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)


def _created(response: pb.CreateClientResponse, out: TextIO) -> None:
    _table([response.client], out)
    if response.client_secret:
        print(f"\nclient_secret: {response.client_secret}\n(shown only now; store it safely)", file=out)


def _deleted(_: Message, out: TextIO) -> None:
    print("deleted", file=out)
