"""The token exchange grant (RFC 8693): a workload trades a user's access token for one it may
send downstream, ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange`` (HTTP).

The exchanging client authenticates (a secret, or its Kubernetes service-account token) and is the
*actor*; the user stays the subject. The issued access token has the subject token's ``sub`` and
``namespace``, ``client_id`` = the exchanging client, ``act`` = ``{"sub": <client id>}`` (with the
subject token's own ``act`` nested inside, §4.1), ``aud`` = the requested targets, the same or
fewer scopes, and an ``exp`` no later than the subject token's. No refresh token. It is stored
like any access token (``parent_jti`` = the subject token's jti), so revocation by jti, listing
and the identity cut-offs (disable, delete, policy change: by sub + namespace + iat, at the token
service and at every sidecar) apply to it unchanged.

Refusals: invalid_request (token types, ``actor_token``), invalid_target (an audience the
client may not exchange for, §2.2.2), invalid_grant (the subject token: not ours, not an access
token, expired, revoked, its identity disabled or deleted — checked exactly as CheckAccess
checks, :func:`token_service.access.verify_access_token`), invalid_scope (widening).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.engine import Connection

from native_iam import claims as claim_names
from native_iam import jws
from native_iam.limits import MAX_TOKEN_BYTES
from token_service.access import verify_access_token
from token_service.clients import OAuthClient
from token_service.core import Core
from token_service.errors import (
    InvalidRequest,
    InvalidTarget,
    ScopeNotGranted,
    TokenDisabled,
    TokenExpired,
    TokenInvalid,
    TokenNotFound,
)
from token_service.grants._issue import ClientContext, IssuedTokens, issue
from token_service.grants._outcomes import counted
from token_service.requested_scopes import requested_scopes
from token_service.store import identities, tokens
from token_service.tokens import TokenClaims

__all__ = ["ACCESS_TOKEN_TYPE", "MAX_ACT_DEPTH", "exchange_token"]

#: RFC 8693 §3: the only token type exchanged and issued here.
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"
#: Actors nested in ``act`` at most (an exchange of an exchange of …); deeper is refused.
MAX_ACT_DEPTH: Final = 5


@dataclass(frozen=True, slots=True)
class _Exchange:
    core: Core
    subject: TokenClaims
    client: ClientContext
    scopes: tuple[str, ...]
    act: dict[str, Any]
    metadata: str


def _targets(client: OAuthClient, requested: Iterable[str]) -> tuple[str, ...]:
    """The audiences of the new token: those requested (``audience`` and ``resource``), each one
    the client may exchange for; none requested: all of them."""
    allowed = client.exchange_audiences
    if not allowed:
        raise InvalidTarget("this client may not exchange tokens for any audience")
    targets = tuple(dict.fromkeys(requested)) or allowed
    unknown = [t for t in targets if t not in allowed]
    if unknown:
        raise InvalidTarget(f"this client may not exchange tokens for: {unknown[0][:100]}")
    return targets


def _actor(client_id: str, subject_token: str) -> dict[str, Any]:
    """``{"sub": client_id}``, with the subject token's ``act`` nested (RFC 8693 §4.1).

    Read after :func:`verify_access_token` proved the signature; a malformed or too deep chain
    is refused (it can only come from a token this service signed, so it should never happen).
    """
    earlier = jws.unverified(subject_token, MAX_TOKEN_BYTES)[1].get(claim_names.ACT)
    depth, actor = 0, earlier
    while actor is not None:
        depth += 1
        if depth >= MAX_ACT_DEPTH or not isinstance(actor, dict) or not jws.is_text(actor.get("sub")):
            raise TokenInvalid("the subject token's actor chain is not accepted", reason="act_chain")
        actor = actor.get(claim_names.ACT)
    return {"sub": client_id} if earlier is None else {"sub": client_id, claim_names.ACT: earlier}


@counted("token_exchange")
async def exchange_token(
    core: Core,
    *,
    client: OAuthClient,
    subject_token: str,
    subject_token_type: str,
    requested_token_type: str | None = None,
    actor_token: str | None = None,
    audiences: Iterable[str] = (),
    scopes: Iterable[str] | None = None,
    metadata: str = "",
) -> IssuedTokens:
    """Exchange ``subject_token`` (a user's access token of this issuer) for ``client``.

    Raises :class:`InvalidRequest`, :class:`InvalidTarget`, :class:`ScopeNotGranted`,
    :class:`~token_service.errors.MalformedScope` and the subject token's invalid_grant leaves.
    """
    if subject_token_type != ACCESS_TOKEN_TYPE:
        raise InvalidRequest(f"subject_token_type must be {ACCESS_TOKEN_TYPE}")
    if requested_token_type not in (None, ACCESS_TOKEN_TYPE):
        raise InvalidRequest(f"requested_token_type must be {ACCESS_TOKEN_TYPE}")
    if actor_token is not None:
        raise InvalidRequest("actor_token is not supported: the authenticated client is the actor")
    narrowed = None if scopes is None else requested_scopes(scopes)
    targets = _targets(client, audiences)
    subject = await verify_access_token(core, subject_token)
    if subject.is_client:
        # A client_credentials token (sub_kind client) names no user to act for (issue 13).
        raise TokenInvalid("the subject token is a client's own token, not a user's", reason="client_subject")
    if narrowed is not None and not set(narrowed) <= set(subject.scopes):
        raise ScopeNotGranted("an exchange may not widen the subject token's scopes")
    ttl = client.access_token_ttl_s or core.settings.access_token_ttl_s
    context = ClientContext(client.client_id, audiences=targets, access_token_ttl_s=ttl, issue_refresh_token=False)
    request = _Exchange(
        core,
        subject,
        context,
        narrowed if narrowed is not None else subject.scopes,
        _actor(client.client_id, subject_token),
        metadata,
    )
    return await core.store.run_write(_exchange_in_transaction, request)


def _exchange_in_transaction(conn: Connection, request: _Exchange) -> IssuedTokens:
    subject = request.subject
    record = tokens.record(conn, subject.jti)
    if record is None:
        raise TokenNotFound()
    # The identity share-locked (see identities.for_grant): a disable either waits for this
    # exchange (its cut-off then covers the new token) or is seen here.
    identity = identities.for_grant(conn, record.identity_id)
    if identity is None or identity.uid != record.identity_uid:
        raise TokenNotFound("the token's identity was deleted")
    if record.state != "active":
        raise TokenDisabled()
    if not identity.active:
        raise TokenDisabled("the token's identity is disabled")
    if identity.policy_cutoff_at is not None and subject.iat <= identity.policy_cutoff_at:
        raise TokenDisabled("the identity's policy changed after the token was issued")
    now = request.core.clock()
    # Never outlive the subject token: exp ≤ its exp (issue() signs exp = int(now) + ttl).
    ttl = min(request.client.access_token_ttl_s or 0, subject.exp - int(now))
    if ttl <= 0:
        raise TokenExpired()
    return issue(
        request.core,
        conn,
        identity_id=record.identity_id,
        identity_uid=record.identity_uid,
        namespace=record.namespace,
        identity=record.identity,
        scopes=request.scopes,
        metadata=request.metadata,
        client=dataclasses.replace(request.client, access_token_ttl_s=ttl),
        now=now,
        with_refresh=False,
        act=request.act,
        subject_jti=subject.jti,
    )
