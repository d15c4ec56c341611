"""The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6): ``grant_type=authorization_code``.

Order: claim the code (``take``: one winner across replicas) → leave the *spent* marker → the
code must be the client's, the ``redirect_uri`` exactly the authorization
request's, the ``code_verifier`` hash to its challenge (S256, constant time) → one write
transaction that re-reads the identity (same incarnation, active, policy still covering the
scopes) and issues the tokens into the code's family (:func:`~token_service.authorize.codes.family_of`).
Every refusal is ``invalid_grant``; its ``reason`` (for metrics and logs) says which check failed.

A code presented again revokes that family (RFC 6749 §4.1.2) and is refused. If the replay races
the first redemption's transaction, its flag makes the first redemption revoke what it just
issued and be refused too; either way nothing issued from a replayed code survives.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.engine import Connection

from native_iam import scopes as scope_rules
from native_iam.limits import MAX_CODE_LENGTH
from token_service import revocations
from token_service.authorize import codes
from token_service.core import Core
from token_service.errors import IdentityNotActive, IdentityNotFound, IdentityUnauthenticated, TokenInvalid
from token_service.grants._issue import ClientContext, IssuedTokens, issue
from token_service.grants._outcomes import counted
from token_service.store import identities

__all__ = ["exchange_authorization_code"]

_INVALID = "authorization code is invalid, expired or was issued for another request"


@counted("authorization_code")
async def exchange_authorization_code(
    core: Core, *, code: str, redirect_uri: str | None, code_verifier: str | None, client: ClientContext, metadata: str
) -> IssuedTokens:
    """Tokens for ``code``; raises :class:`TokenInvalid` (reason: ``code_unknown``, ``code_reused``,
    ``code_client_mismatch``, ``redirect_uri_mismatch``, ``pkce_mismatch``) or the identity's refusals."""
    if len(code) > MAX_CODE_LENGTH or not codes.well_formed(code):
        raise TokenInvalid(_INVALID, reason="code_unknown")
    grant = await codes.redeem(core, code)
    if grant is None:
        # Unknown, expired, or redeemed already: revoke whatever the code may have issued (nothing
        # for a guess) without asking any shared state first, so a replay racing the winner's
        # marker still kills the winner's tokens.
        replay = await codes.mark_replayed(core, code)
        await core.store.run_write(_revoke_family, codes.family_of(code), core.clock())
        if replay:
            raise TokenInvalid("authorization code was already used; its tokens are revoked", reason="code_reused")
        raise TokenInvalid(_INVALID, reason="code_unknown")
    await codes.mark_spent(core, code)
    if grant.client_id != client.client_id:
        raise TokenInvalid(_INVALID, reason="code_client_mismatch")
    if redirect_uri != grant.redirect_uri:  # RFC 6749 §4.1.3: identical (exact string)
        raise TokenInvalid(_INVALID, reason="redirect_uri_mismatch")
    if not codes.pkce_matches(code_verifier, grant.code_challenge):
        raise TokenInvalid("code_verifier does not match the code_challenge", reason="pkce_mismatch")
    family = codes.family_of(code)
    issued = await core.store.run_write(_issue_in_transaction, core, grant, family, client, metadata)
    if await codes.was_replayed(core, code):  # a replay arrived while we issued: what we issued dies too
        await core.store.run_write(_revoke_family, family, core.clock())
        raise TokenInvalid("authorization code was already used; its tokens are revoked", reason="code_reused")
    return dataclasses.replace(issued, nonce=grant.nonce, auth_time=grant.auth_time)


def _issue_in_transaction(
    conn: Connection, core: Core, grant: codes.CodeGrant, family: str, client: ClientContext, metadata: str
) -> IssuedTokens:
    current = identities.for_grant(conn, grant.identity_id)
    if current is None or current.uid != grant.identity_uid:  # deleted (and maybe re-created) since the login
        raise IdentityNotFound()
    if not current.active:
        raise IdentityNotActive()
    if scope_rules.not_covered(grant.scopes, (current.grants or "").split()):
        raise IdentityUnauthenticated()
    return issue(
        core,
        conn,
        identity_id=current.id,
        identity_uid=current.uid,
        namespace=grant.namespace,
        identity=grant.identity,
        scopes=grant.scopes,
        metadata=metadata,
        client=client,
        now=core.clock(),
        with_refresh=client.issue_refresh_token,
        family_id=family,
    )


def _revoke_family(conn: Connection, family_id: str, now: float) -> None:
    match = revocations.TokenMatch(family_id=family_id)
    revocations.disable_tokens(conn, match, revocations.Reason.AUTHORIZATION_CODE_REUSE, now)
