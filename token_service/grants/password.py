"""The password grant: CreateTokenWithPassword (gRPC) and ``grant_type=password`` (HTTP), and the
one password check it shares with the login page (:func:`verify_password`).

Order: one write transaction that looks the identity up and reserves the attempt's slot on its
lockout counters (:meth:`~token_service.lockout.Lockout.reserve_sync`; that is the lockout check)
→ verify (off the event loop; a dummy hash when the identity, its password or the lockout says
no) → a wrong password turns the slot into a failure; a right one runs one write transaction that
re-reads the identity under a share lock, checks it is active and that its policy grants the
scopes, stores the tokens and gives the slot back.

With the counters in Redis (``SYSTEM_CACHE_URL``) the first step is a read of the identity and one
script call that reserves the slots, and the slot of a granted attempt is given back by one more
call once the tokens are committed (:meth:`~token_service.lockout.Lockout.issued`). Redis
unreachable: :class:`~token_service.errors.Unavailable` before any verification (fail closed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection

from token_service.core import Core
from token_service.errors import CredentialsInvalid, IdentityNotActive, ScopeNotGranted
from token_service.grants._issue import ClientContext, IssuedTokens, issue
from token_service.grants._outcomes import counted
from token_service.lockout import Attempt, Verdict, identity_key
from token_service.requested_scopes import granted_scopes, requested_scopes
from token_service.store import identities

__all__ = ["create_token_with_password", "verify_password"]

T = TypeVar("T")

#: How long an attempt waits for a free slot on its counters, and how often it asks again when
#: no attempt of this process frees one (the slot may be freed by another replica).
BUSY_WAIT_S = 10.0
BUSY_POLL_S = 0.25


@counted("password")
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
    requested = requested_scopes(scopes)

    def issue_tokens(conn: Connection, current: Any) -> IssuedTokens:
        granted = granted_scopes(requested, (current.grants or "").split())
        return issue(
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

    return await verify_password(
        core,
        namespace=namespace,
        identity=identity,
        password=password,
        client_address=client_address,
        then=issue_tokens,
    )


async def verify_password(
    core: Core,
    *,
    namespace: str,
    identity: str,
    password: str,
    client_address: str | None,
    then: Callable[[Connection, Any], T],
) -> T:
    """The one password check (the password grant's and the login page's): lockout, argon2,
    non-enumerating refusals. On success ``then(conn, identity_row)`` runs in the write
    transaction that re-read the identity (share-locked, active, password unchanged) and its
    result is returned; what it raises (ScopeNotGranted…) refuses the attempt without counting a
    failed login.

    Raises :class:`CredentialsInvalid` (reason says why, for logs and metrics only),
    :class:`IdentityNotActive`, :class:`~token_service.errors.Unavailable`.
    """
    attempt, record = await _reserve(core, namespace, identity, client_address)
    verification = asyncio.ensure_future(_verify(core, attempt, record, password))
    try:
        verified = await asyncio.shield(verification)
    except asyncio.CancelledError:
        # The caller gave up (gRPC deadline, client gone): the verification runs on, and the
        # slot is settled when it ends (see Lockout.settle_abandoned).
        core.lockout.settle_abandoned(attempt, verification, core.clock)
        raise
    if not verified:
        await core.lockout.finish(attempt, core.clock(), success=False)
        raise CredentialsInvalid(reason=_refusal(attempt, record) or "wrong_password")
    if record is None:  # unreachable: verify() returns False without a record
        raise CredentialsInvalid(reason="unknown_identity")
    try:
        login = _VerifiedLogin(core, record.id, record.hash, namespace, identity, attempt, then)
        result = await core.store.run_write(_confirm_in_transaction, login)
    except (IdentityNotActive, ScopeNotGranted):
        # The password was right: refusing the grant for another reason is not a guess.
        await core.lockout.finish(attempt, core.clock(), success=True)
        raise
    except CredentialsInvalid:
        # Deleted, or its password changed while we verified: a failed login like any other.
        await core.lockout.finish(attempt, core.clock(), success=False)
        raise
    await core.lockout.issued(attempt, core.clock())
    return result


def _refusal(attempt: Attempt, record: Any) -> str:
    """Why this attempt is refused whatever the password ("" when only the password decides)."""
    if attempt.verdict is not Verdict.GO:
        return "locked_out" if attempt.verdict is Verdict.LOCKED else "busy"
    if record is None:
        return "unknown_identity"
    if record.hash is None or not record.enabled:
        return "password_disabled"
    return ""


async def _verify(core: Core, attempt: Attempt, record: Any, password: str) -> bool:
    """Always one argon2 verification, so every refusal costs the same time."""
    refused = bool(_refusal(attempt, record))
    return await core.passwords.verify(None if refused else record.hash, password) and not refused


async def _reserve(core: Core, namespace: str, identity: str, client_address: str | None) -> tuple[Attempt, Any]:
    """Reserve the attempt's slots, waiting (up to BUSY_WAIT_S) while they are all in flight: a
    burst of right passwords gets served in turn; a burst of guesses still verifies no more than
    the threshold. After the wait the attempt is refused, uncounted (reason ``busy``)."""
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        freed_before = core.lockout.freed
        if core.lockout.in_database:
            attempt, record = await core.store.run_write(
                _begin, core, namespace=namespace, identity=identity, client_address=client_address, now=core.clock()
            )
        else:  # counters in Redis: read the identity, then one script call reserves the slots
            record = await core.store.run_read(identities.login_record, namespace, identity)
            keys, unknown = _counters(core, record, namespace, identity, client_address)
            attempt = await core.lockout.reserve(keys, core.clock(), unknown)
        if attempt.verdict is not Verdict.BUSY or time.monotonic() >= deadline:
            return attempt, record
        await core.lockout.wait_for_slot(attempt, freed_before, BUSY_POLL_S)


def _begin(
    conn: Connection, core: Core, *, namespace: str, identity: str, client_address: str | None, now: float
) -> tuple[Attempt, Any]:
    """The identity's login record, and the attempt's slots on its counters and the client
    address's, in one write transaction. An unknown identity's counter holds slots but counts no
    failure, so no row stays behind for a guessed name; its failures count against the address."""
    record = identities.login_record(conn, namespace, identity)
    keys, unknown = _counters(core, record, namespace, identity, client_address)
    return core.lockout.reserve_sync(conn, keys, now, unknown), record


def _counters(
    core: Core, record: Any, namespace: str, identity: str, client_address: str | None
) -> tuple[list[str], tuple[str, ...]]:
    """The attempt's counters, and those of them that never count a failure (an unknown identity's)."""
    keys = core.lockout.keys(namespace, identity, client_address)
    unknown = () if record is not None and record.hash is not None else (identity_key(namespace, identity),)
    return keys, unknown


@dataclass(frozen=True, slots=True)
class _VerifiedLogin(Generic[T]):
    """A login whose password verified, for its write transaction."""

    core: Core
    identity_id: int
    #: The hash the password verified against: the login fails if it changed meanwhile.
    verified_hash: str
    namespace: str
    identity: str
    attempt: Attempt
    then: Callable[[Connection, Any], T]


def _confirm_in_transaction(conn: Connection, login: _VerifiedLogin[T]) -> T:
    core, namespace, identity = login.core, login.namespace, login.identity
    current = identities.for_grant(conn, login.identity_id)
    if current is None:  # deleted while we verified
        raise CredentialsInvalid(reason="unknown_identity")
    # Read after the identity's share lock (PostgreSQL; SQLite has one writer): a password
    # changed or disabled while we verified refuses the login, so no token issued with the old
    # password outlives the change (admin.set_password revokes the earlier ones).
    stored = identities.login_record(conn, namespace, identity)
    if stored is None or stored.hash != login.verified_hash or not stored.enabled:
        raise CredentialsInvalid(reason="password_changed")
    if not current.active:
        raise IdentityNotActive()
    result = login.then(conn, current)
    if core.lockout.in_database:  # else given back once committed (Lockout.issued)
        core.lockout.succeeded_sync(conn, login.attempt, core.clock())
    return result
