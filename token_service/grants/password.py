"""The password grant: CreateTokenWithPassword (gRPC) and ``grant_type=password`` (HTTP).

Order: lockout check → look up → verify (off the event loop; a dummy hash when the identity,
its password or the lockout says no) → one write transaction that re-reads the identity under a
share lock, checks it is active and that its policy grants the scopes, and stores the tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

from native_iam import scopes as scope_rules
from token_service.core import Core
from token_service.errors import CredentialsInvalid, IdentityNotActive, MalformedScope, ScopeNotGranted
from token_service.grants._issue import ClientContext, IssuedTokens, issue
from token_service.lockout import identity_key
from token_service.store import queries

__all__ = ["create_token_with_password"]


async def create_token_with_password(
    core: Core,
    *,
    namespace: str,
    identity: str,
    password: str,
    metadata: str = "",
    scopes: Iterable[str] = (),
    client: ClientContext | None = None,
    client_address: str | None = None,
) -> IssuedTokens:
    """Authenticate ``identity`` by password and issue an access token (and a refresh token).

    Empty ``scopes``: the policy's concrete scopes (:func:`native_iam.scopes.concrete`).
    Raises :class:`CredentialsInvalid`, :class:`IdentityNotActive`, :class:`ScopeNotGranted`,
    :class:`MalformedScope`, :class:`~token_service.errors.Unavailable`.
    """
    try:
        requested = scope_rules.normalize(scopes)
    except scope_rules.ScopeError as exc:
        raise MalformedScope(str(exc)) from None
    now = core.clock()
    lock_keys = core.lockout.keys(namespace, identity, client_address)
    locked, record = await core.store.run_read(_login, core, lock_keys, namespace, identity, now)
    if locked is not None:
        reason = "locked_out"
    elif record is None:
        reason = "unknown_identity"
    elif record.hash is None or not record.enabled:
        reason = "password_disabled"
    else:
        reason = ""
    # Always one argon2 verification, so every refusal below costs the same time.
    if not await core.passwords.verify(record.hash if record and not reason else None, password):
        await core.lockout.record_failure(lock_keys, now)
        raise CredentialsInvalid(reason=reason or "wrong_password")
    if record is None:  # unreachable: verify() returns False without a record
        raise CredentialsInvalid(reason="unknown_identity")
    return await core.store.run_write(
        _issue_in_transaction, core, record.id, record.hash, namespace, identity, requested, metadata, client
    )


def _login(
    conn: Connection, core: Core, lock_keys: list[str], namespace: str, identity: str, now: float
) -> tuple[str | None, Any]:
    """The lockout state and the identity's login record, in one read transaction."""
    return core.lockout.locked_sync(conn, lock_keys, now), queries.login_record_sync(conn, namespace, identity)


def _issue_in_transaction(
    conn: Connection,
    core: Core,
    identity_id: int,
    verified_hash: str,
    namespace: str,
    identity: str,
    requested: tuple[str, ...],
    metadata: str,
    client: ClientContext | None,
) -> IssuedTokens:
    current = queries.identity_for_grant_sync(conn, identity_id)
    if current is None:  # deleted while we verified
        raise CredentialsInvalid(reason="unknown_identity")
    # Read after the identity's share lock (PostgreSQL; SQLite has one writer): a password
    # changed or disabled while we verified refuses the grant, so no token issued with the old
    # password outlives the change (admin.set_password revokes the earlier ones).
    login = queries.login_record_sync(conn, namespace, identity)
    if login is None or login.hash != verified_hash or not login.enabled:
        raise CredentialsInvalid(reason="password_changed")
    if not current.active:
        raise IdentityNotActive()
    grants = (current.grants or "").split()
    if requested:
        missing = scope_rules.not_covered(requested, grants)
        if missing:
            raise ScopeNotGranted(f"scope not granted: {' '.join(missing)}"[:300])
        granted = requested
    else:
        granted = scope_rules.concrete(grants)
    result = issue(
        core,
        conn,
        identity_id=current.id,
        identity_uid=current.uid,
        namespace=namespace,
        identity=identity,
        scopes=granted,
        metadata=metadata,
        client=client,
        now=core.clock(),  # after the lock: an identity cut-off taken later covers this iat
        with_refresh=client.issue_refresh_token if client else True,
    )
    core.lockout.clear_sync(conn, identity_key(namespace, identity))
    return result
