"""The refresh grant: RefreshToken (gRPC) and ``grant_type=refresh_token`` (HTTP).

Checks, in the order the seed's statuses suggest: the token itself (signature, kind, expiry),
its record (deleted, disabled, the stored hash), the identity (deleted, disabled), then whether
the identity's policy still grants every scope of the token. All of it, and the new token's
rows, in one write transaction.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from native_iam import claims as claim_names
from native_iam import scopes as scope_rules
from token_service import revocations
from token_service.clients import GrantType
from token_service.core import Core
from token_service.errors import (
    IdentityNotActive,
    IdentityNotFound,
    IdentityUnauthenticated,
    NotARefreshToken,
    ScopeNotGranted,
    TokenDisabled,
    TokenInvalid,
    TokenNotFound,
)
from token_service.grants._issue import ClientContext, IssuedTokens, client_context, issue
from token_service.grants._outcomes import counted
from token_service.requested_scopes import requested_scopes
from token_service.store import identities, tokens
from token_service.tokens import TokenClaims, token_hash

__all__ = ["refresh_access_token"]


@counted("refresh_token")
async def refresh_access_token(
    core: Core,
    *,
    refresh_token: str,
    scopes: Iterable[str] | None = None,
    client: ClientContext | None = None,
) -> IssuedTokens:
    """Issue a new access token with the refresh token's scopes (or a subset, ``scopes``).

    ``client`` is the authenticated OAuth client (the token endpoint) or None (gRPC, which has
    no client authentication); :func:`_bound_client` decides which client's context applies.
    With its ``rotate_refresh_tokens`` the presented token is spent and a new refresh token
    of the same family is returned; a spent token presented again after the grace window
    revokes the whole family (RFC 9700 §4.14.2) and is refused as TOKEN_DISABLED.
    Raises the :class:`~token_service.errors.GrantError` leaves of the seed's RefreshToken.
    """
    # Malformed input is refused before the token is looked at (invalid_scope before invalid_grant).
    narrowed = None if scopes is None else requested_scopes(scopes)
    claims = core.codec.verify(refresh_token, core.clock())
    if claims.usage != claim_names.REFRESH_TOKEN:
        raise NotARefreshToken()
    client = await _bound_client(core, claims, client)
    if narrowed is not None and not set(narrowed) <= set(claims.scopes):
        raise ScopeNotGranted("a refresh may not widen the token's scopes")  # RFC 6749 §6
    rotate = bool(client and client.rotate_refresh_tokens)
    request = _Refresh(core, claims, refresh_token, narrowed, client, rotate)
    outcome = await core.store.run_write(_refresh_in_transaction, request)
    if outcome is _REUSED:
        raise TokenDisabled("refresh token was already used; its family is revoked", reason="refresh_token_reuse")
    return outcome  # type: ignore[return-value]


async def _bound_client(core: Core, claims: TokenClaims, authenticated: ClientContext | None) -> ClientContext | None:
    """The client context a refresh runs with: a refresh token is bound to its client (RFC 6749 §6).

    One decision for every transport. With an authenticated client (the token endpoint) the
    token must be that client's. Without one (gRPC RefreshToken, and the sidecar that forwards
    it): a token of the gRPC API keeps the gRPC context (None); a token of a public client gets
    exactly that client's context, rotation and reuse detection included (RFC 9700 §4.14), as
    a public client proves nothing more at the token endpoint either; a token of a
    confidential client needs its client authentication, which gRPC cannot carry, so it is
    refused, as is a token whose client was deleted or lost the refresh_token grant.
    """
    if authenticated is not None:
        if claims.client_id != authenticated.client_id:
            raise TokenInvalid("refresh token was issued to another client", reason="client_mismatch")
        if claims.iat < authenticated.created_at:
            # Issued to an earlier client of this id, deleted since: never revived (issue 13).
            raise TokenInvalid("refresh token was issued to another client", reason="client_recreated")
        return authenticated
    if claims.client_id == core.settings.grpc_client_id:
        return None
    registered = await core.clients.get_client(claims.client_id)
    if (
        registered is None
        or not registered.enabled
        or claims.iat < registered.created_at
        or not registered.allows(GrantType.REFRESH_TOKEN)
    ):
        raise TokenInvalid("the refresh token's client may no longer refresh tokens", reason="client_unknown")
    if not registered.is_public:
        raise TokenInvalid(
            "refresh token of a confidential OAuth client: refresh it at the token endpoint with the"
            " client's authentication",
            reason="client_authentication_required",
        )
    return client_context(registered, core.settings.refresh_grace_s)


#: Returned (not raised) when reuse was detected, so that the family revocation commits.
_REUSED = object()


@dataclass(frozen=True, slots=True)
class _Refresh:
    """A refresh whose token verified, for its write transaction."""

    core: Core
    claims: TokenClaims
    refresh_token: str
    #: The narrower scopes asked for; None keeps the token's.
    narrowed: tuple[str, ...] | None
    client: ClientContext | None
    #: Whether the client rotates refresh tokens (the presented one is spent).
    rotate: bool


def _refresh_in_transaction(conn: Connection, request: _Refresh) -> IssuedTokens | object:
    core, claims, client, rotate = request.core, request.claims, request.client, request.rotate
    record = tokens.refresh_record(conn, claims.jti)
    if record is None:
        raise TokenNotFound()
    identity = record
    if conn.dialect.name == "postgresql":
        # Locks in the order every writer takes them (admin.set_password too): the identity row
        # (share; see store.identities.for_grant), then, rotating, the token row, where concurrent
        # uses of one token queue. Then the token is read again: a revocation that committed
        # while we waited (a password change) must be seen.
        identity = identities.for_grant(conn, record.identity_id)
        if identity is not None and identity.uid != record.identity_uid:
            identity = None  # another identity on this id: the token's own is gone
        if rotate:
            tokens.record(conn, claims.jti, lock=True)
        record = tokens.refresh_record(conn, claims.jti)
        if record is None:
            raise TokenNotFound()
    if record.token_hash is None or not hmac.compare_digest(record.token_hash, token_hash(request.refresh_token)):
        raise TokenInvalid(reason="hash_mismatch")
    if record.state != "active":
        raise TokenDisabled()
    if identity is None or (identity is record and record.identity_row is None):
        raise IdentityNotFound()
    if not identity.active:
        raise IdentityNotActive()
    if not scope_rules.covered(claims.scopes, (identity.grants or "").split()):
        raise IdentityUnauthenticated()
    now = core.clock()
    grace = client.reuse_grace_s if client is not None else core.settings.refresh_grace_s
    # A spent (rotated) token is checked for reuse whichever transport presents it, also when
    # the client that rotated it no longer does (``rotate`` off): a replay is a replay.
    if record.spent_at is not None and now - record.spent_at > grace:
        _revoke_family(conn, record.family_id or record.jti, now)
        return _REUSED
    if rotate and record.spent_at is None:
        tokens.mark_spent(conn, record.jti, now)
    namespace = identity.identity_namespace if identity is record else identity.namespace
    name = identity.identity_name if identity is record else identity.name
    return issue(
        core,
        conn,
        identity_id=record.identity_id,
        identity_uid=record.identity_uid,
        namespace=namespace,
        identity=name,
        scopes=request.narrowed if request.narrowed is not None else claims.scopes,
        metadata=record.metadata,
        client=client,
        now=now,
        with_refresh=rotate,
        family_id=record.family_id,
        parent_jti=record.jti,
        refresh_exp=record.expires_at,  # rotation never extends the family's lifetime
        refresh_scopes=claims.scopes,  # a rotated refresh token keeps exactly the old scopes
    )


def _revoke_family(conn: Connection, family_id: str, now: float) -> None:
    revocations.disable_tokens(
        conn, revocations.TokenMatch(family_id=family_id), revocations.Reason.REFRESH_TOKEN_REUSE, now
    )
