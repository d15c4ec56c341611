"""The client credentials grant: ``grant_type=client_credentials`` (RFC 6749 §4.4, HTTP only).

A confidential client obtains an access token as itself (RFC 9068: ``sub`` = ``client_id``,
``sub_kind`` = client, no namespace), with scopes from the client's own scope policy, and no
refresh token (RFC 6749 §4.4.3: it can always authenticate again). Without ``scope`` it gets the
policy's concrete scopes (RFC 6749 §3.3 allows a documented default; the same default as the
password grant). ``openid`` is refused: it asks for an end-user's identity, and a client's own
token names none. The client row is share-locked, its state and policy read and the token stored
in one write transaction, so a concurrent disable either waits for it or refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from native_iam import claims
from token_service.core import Core
from token_service.errors import ScopeNotGranted
from token_service.grants._issue import ClientContext, IssuedTokens, issue, live_client
from token_service.grants._outcomes import counted
from token_service.id_tokens import OPENID
from token_service.requested_scopes import granted_scopes, requested_scopes

__all__ = ["client_credentials_grant"]


@counted("client_credentials")
async def client_credentials_grant(
    core: Core, *, client: ClientContext, scopes: Iterable[str] | None = None, metadata: str = ""
) -> IssuedTokens:
    """Issue ``client`` (authenticated by the caller) an access token of its own.

    ``scopes`` None or empty: the policy's concrete scopes. Raises :class:`ScopeNotGranted`
    (invalid_scope) for a scope outside the policy or ``openid``, :class:`MalformedScope`, and
    :class:`~token_service.errors.InvalidClient` when the client was disabled or deleted meanwhile.
    """
    requested = requested_scopes(scopes or ())
    if OPENID in requested:
        raise ScopeNotGranted("openid asks for an end-user; a client_credentials token names none")
    return await core.store.run_write(_issue_in_transaction, _Request(core, client, requested, metadata))


@dataclass(frozen=True, slots=True)
class _Request:
    core: Core
    client: ClientContext
    requested: tuple[str, ...]
    metadata: str


def _issue_in_transaction(conn: Connection, request: _Request) -> IssuedTokens:
    core, client, requested = request.core, request.client, request.requested
    policy = live_client(conn, client.client_id).scopes.split()
    # `openid` was refused when requested; a policy that lists it still puts no `openid` in a token.
    granted = tuple(s for s in granted_scopes(requested, policy, whose=" to this client") if s != OPENID)
    return issue(
        core,
        conn,
        identity_id=None,
        identity_uid=None,
        namespace="",
        identity="",
        scopes=granted,
        metadata=request.metadata,
        client=client,
        now=core.clock(),  # after the client's share lock: a disable's cut-off taken later covers it
        with_refresh=False,
        principal=claims.CLIENT_PRINCIPAL,
    )
