"""Administration: identities, passwords, policies, issued tokens and keys.

Transport-agnostic like the grants: the admin gRPC servicer (:mod:`token_service.api.grpc.admin`)
and ``native-iam admin bootstrap`` call these. Every change that makes tokens unacceptable
goes through :mod:`token_service.revocations` (the state change and its feed event, together).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from native_iam import claims
from native_iam import scopes as scope_rules
from native_iam.limits import MAX_NAME_BYTES, MAX_PAGE_SIZE, MAX_PASSWORD_BYTES, MAX_POLICY_ENTRIES
from token_service import revocations
from token_service.core import Core
from token_service.errors import AlreadyExists, FailedPrecondition, InvalidRequest, MalformedScope, NotFound
from token_service.keys import SigningKey
from token_service.store import identities, tokens

__all__ = [
    "ADMIN_SCOPE",
    "IdentityInfo",
    "TokenInfo",
    "create_identity",
    "delete_identity",
    "delete_token",
    "ensure_identity",
    "get_identity",
    "list_identities",
    "list_keys",
    "list_tokens",
    "retire_key",
    "rotate_key",
    "set_identity_active",
    "set_password",
    "set_password_enabled",
    "set_policy",
    "set_token_active",
    "validate_name",
]

#: The scope an access token needs to call the admin API.
ADMIN_SCOPE = "iam:admin"


@dataclass(frozen=True, slots=True)
class IdentityInfo:
    namespace: str
    name: str
    active: bool
    created_at: float
    has_password: bool
    password_enabled: bool
    policy: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What an admin may see of an issued token: never the token itself."""

    jti: str
    usage: str
    namespace: str
    identity: str
    client_id: str
    scopes: tuple[str, ...]
    metadata: str
    created_at: int
    expires_at: int
    state: str
    family_id: str | None


def validate_name(field: str, value: str, required: bool = True) -> str:
    if required and not value:
        raise InvalidRequest(f"{field} is required")
    if len(value.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidRequest(f"{field} is longer than {MAX_NAME_BYTES} bytes")
    if any(ord(c) < 0x20 or c == "\x7f" for c in value) or value != value.strip():
        raise InvalidRequest(f"{field} contains control characters or surrounding spaces")
    return value


def validate_grants(grants: Iterable[str]) -> tuple[str, ...]:
    result = set()
    for grant in grants:
        base = grant[:-2] if grant.endswith(":*") else grant
        if grant != "*" and not scope_rules.is_valid_scope(base + ":x" if grant.endswith(":*") else base):
            raise MalformedScope(f"invalid policy entry {grant[:40]!r}: use scope, prefix:* or *")
        result.add(grant)
    if len(result) > MAX_POLICY_ENTRIES:
        raise MalformedScope(f"a policy holds at most {MAX_POLICY_ENTRIES} entries")
    return tuple(sorted(result))


async def _identity_id(conn: AsyncConnection, namespace: str, name: str, lock: bool = False) -> int:
    found = await identities.id_of(conn, namespace, name, lock)
    if found is None:
        raise NotFound(f"identity {_label(namespace, name)} not found")
    return found


async def _lock_identity(core: Core, conn: AsyncConnection, namespace: str, name: str) -> tuple[int, float]:
    """Lock the identity's row, then read the clock: the instant of a cut-off of its tokens. Read
    only once the lock is held: every grant that committed first read its clock (its tokens' iat)
    before this, so a cut-off at this instant covers them."""
    return await _identity_id(conn, namespace, name, lock=True), core.clock()


def _label(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


# --- identities ----------------------------------------------------------------------------


async def create_identity(core: Core, namespace: str, name: str, active: bool = True) -> IdentityInfo:
    validate_name("namespace", namespace, required=False)
    validate_name("name", name)
    await _past_deletion_cutoff(core, namespace, name)
    now = core.clock()
    async with core.store.write() as conn:
        if await identities.create(conn, namespace, name, active, now) is None:
            raise AlreadyExists(f"identity {_label(namespace, name)} already exists")
    return await get_identity(core, namespace, name)


async def _past_deletion_cutoff(core: Core, namespace: str, name: str) -> None:
    """Wait, if need be, until the second of the last deletion of this name has passed.

    Cut-offs are whole seconds and a sidecar treats every token of the name with ``iat`` at or
    before a deletion's cut-off as the deleted identity's: a token of the new identity issued
    within that second would be refused there while CheckAccess accepts it. Only a re-create
    within a second of the delete waits (less than a second, before any lock is taken).
    """
    now = core.clock()
    async with core.store.read() as conn:
        cutoff = await revocations.last_deletion_cutoff(conn, namespace, name, now, core.settings.max_token_ttl_s)
    if cutoff is not None and 0 < (wait := cutoff + 1 - now) <= 1:
        await asyncio.sleep(wait)


async def get_identity(core: Core, namespace: str, name: str) -> IdentityInfo:
    async with core.store.read() as conn:
        rows = _identity_infos(await identities.page(conn, namespace=namespace, name=name, limit=1))
    if not rows:
        raise NotFound(f"identity {_label(namespace, name)} not found")
    return rows[0]


async def list_identities(
    core: Core, namespace: str | None = None, page_size: int = 100, page_token: str = ""
) -> tuple[list[IdentityInfo], str]:
    """Identities ordered by (namespace, name); ``namespace=None`` lists every namespace."""
    page_size = max(1, min(page_size or 100, MAX_PAGE_SIZE))
    after = _decode_token(page_token) if page_token else None
    async with core.store.read() as conn:
        rows = _identity_infos(await identities.page(conn, namespace=namespace, after=after, limit=page_size + 1))
    next_token = _encode_token(rows[page_size - 1].namespace, rows[page_size - 1].name) if len(rows) > page_size else ""
    return rows[:page_size], next_token


def _identity_infos(rows: Iterable[Any]) -> list[IdentityInfo]:
    return [
        IdentityInfo(
            namespace=row.namespace,
            name=row.name,
            active=bool(row.active),
            created_at=row.created_at,
            has_password=row.password_row is not None,
            password_enabled=bool(row.enabled),
            policy=tuple((row.grants or "").split()),
        )
        for row in rows
    ]


async def set_identity_active(core: Core, namespace: str, name: str, active: bool) -> IdentityInfo:
    """Enable or disable; disabling cuts every token issued to the identity until now."""
    async with core.store.write() as conn:
        identity_id, now = await _lock_identity(core, conn, namespace, name)
        await conn.run_sync(
            revocations.set_identity_active, identity_id, namespace, name, active, now, core.settings.max_token_ttl_s
        )
    return await get_identity(core, namespace, name)


async def delete_identity(core: Core, namespace: str, name: str) -> None:
    """Delete an identity; its tokens become TOKEN_NOT_FOUND / IDENTITY_NOT_FOUND."""
    async with core.store.write() as conn:
        identity_id, now = await _lock_identity(core, conn, namespace, name)
        await conn.run_sync(
            revocations.delete_identity, identity_id, namespace, name, now, core.settings.max_token_ttl_s
        )


# --- passwords and policies ----------------------------------------------------------------


async def set_password(core: Core, namespace: str, name: str, password: str, enabled: bool = True) -> None:
    """Set (or change) the identity's password; revoke its earlier tokens as
    NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE says (see :func:`_revoke_earlier_tokens`)."""
    if not password:
        raise InvalidRequest("password is required")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise InvalidRequest(f"password is longer than {MAX_PASSWORD_BYTES} bytes")
    hashed = await core.passwords.hash_async(password)
    async with core.store.write() as conn:
        # Locked: a grant holding the identity's share lock finishes first (its tokens are then
        # revoked below); one that starts later sees the new hash and is refused.
        identity_id, now = await _lock_identity(core, conn, namespace, name)
        await _revoke_earlier_tokens(core, conn, identity_id, now)
        await identities.set_password(conn, identity_id, hashed, enabled, now)


async def _revoke_earlier_tokens(core: Core, conn: AsyncConnection, identity_id: int, now: float) -> None:
    """Disable the identity's live tokens after a password change (OWASP ASVS V3).

    Passwords change only through the admin API, i.e. an administrator resets them, typically
    because the old one may be known to someone else: whoever knew it may hold access tokens as
    well as refresh tokens, so by default both go (``all``); ``refresh`` keeps access tokens
    until they expire, ``off`` keeps everything. Each token gets a TOKEN_DISABLED feed event,
    so sidecars drop the access tokens within a feed round trip.
    """
    which = core.settings.revoke_on_password_change
    if which == "off":
        return
    match = revocations.TokenMatch(
        identity_id=identity_id, expiring_after=int(now), usage=claims.REFRESH_TOKEN if which == "refresh" else None
    )
    await conn.run_sync(revocations.disable_tokens, match, revocations.Reason.TOKEN_DISABLED, now)


async def _has_password(core: Core, namespace: str, name: str, password: str) -> bool:
    """Whether the identity's enabled password is already ``password`` (one argon2 verification)."""
    async with core.store.read() as conn:
        record = await identities.login_record_async(conn, namespace, name)
    if record is None or record.hash is None or not record.enabled:
        return False
    return await core.passwords.verify(record.hash, password)


async def set_password_enabled(core: Core, namespace: str, name: str, enabled: bool) -> None:
    async with core.store.write() as conn:
        identity_id = await _identity_id(conn, namespace, name)
        if not await identities.set_password_enabled(conn, identity_id, enabled, core.clock()):
            raise NotFound(f"identity {_label(namespace, name)} has no password")


async def set_policy(core: Core, namespace: str, name: str, grants: Iterable[str]) -> IdentityInfo:
    """Replace the identity's policy. If it no longer grants something the old one did, every
    token issued to the identity until now is cut (POLICY_CHANGED); refresh tokens whose scopes
    are still granted keep working (the refresh grant re-checks the policy)."""
    new = validate_grants(grants)
    async with core.store.write() as conn:
        identity_id, now = await _lock_identity(core, conn, namespace, name)
        old_text = await identities.grants(conn, identity_id)
        old = tuple((old_text or "").split())
        await identities.set_policy(conn, identity_id, " ".join(new), now, exists=old_text is not None)
        if not scope_rules.covered(old, new):
            await conn.run_sync(
                revocations.cut_policy, identity_id, namespace, name, now, core.settings.max_token_ttl_s
            )
    return await get_identity(core, namespace, name)


async def ensure_identity(
    core: Core, namespace: str, name: str, password: str | None, grants: Iterable[str]
) -> IdentityInfo:
    """Create the identity if missing, set its password (when given) and add ``grants`` to its
    policy. Idempotent: used by start-up bootstrap and ``native-iam admin bootstrap``."""
    try:
        info = await create_identity(core, namespace, name)
    except AlreadyExists:
        info = await get_identity(core, namespace, name)
    # Only a changed password is set: re-applying the same one at every start-up must not
    # revoke the identity's tokens (set_password would).
    if password and not await _has_password(core, namespace, name, password):
        await set_password(core, namespace, name, password)
    wanted = set(info.policy) | set(grants)
    if wanted != set(info.policy):
        info = await set_policy(core, namespace, name, wanted)
    return await get_identity(core, namespace, name)


# --- tokens --------------------------------------------------------------------------------


async def list_tokens(
    core: Core,
    namespace: str | None = None,
    identity: str | None = None,
    page_size: int = 100,
    page_token: str = "",
) -> tuple[list[TokenInfo], str]:
    """Issued tokens, newest first, filtered by namespace and identity; keyset paging."""
    page_size = max(1, min(page_size or 100, MAX_PAGE_SIZE))
    before = None
    if page_token:
        created, jti = _decode_token(page_token)
        try:
            before = (int(created), jti)
        except ValueError:
            raise InvalidRequest("page_token is not valid") from None
    async with core.store.read() as conn:
        rows = await tokens.page(conn, namespace=namespace, identity=identity, before=before, limit=page_size + 1)
    infos = [
        TokenInfo(
            jti=row.jti,
            usage=row.usage,
            namespace=row.namespace,
            identity=row.identity,
            client_id=row.client_id,
            scopes=tuple(row.scopes.split()),
            metadata=row.metadata,
            created_at=row.created_at,
            expires_at=row.expires_at,
            state=row.state,
            family_id=row.family_id,
        )
        for row in rows
    ]
    next_token = ""
    if len(infos) > page_size:
        last = infos[page_size - 1]
        next_token = _encode_token(str(last.created_at), last.jti)
    return infos[:page_size], next_token


async def set_token_active(core: Core, jti: str, active: bool) -> None:
    now = core.clock()
    async with core.store.write() as conn:
        await conn.run_sync(revocations.set_token_active, jti, active, now)


async def delete_token(core: Core, jti: str) -> None:
    now = core.clock()
    async with core.store.write() as conn:
        await conn.run_sync(revocations.delete_token, jti, now)


async def count_tokens(core: Core) -> int:
    async with core.store.read() as conn:
        return await tokens.count(conn)


# --- keys ----------------------------------------------------------------------------------


async def list_keys(core: Core) -> list[SigningKey]:
    await core.keys.reload()
    return core.keys.keys()


async def rotate_key(core: Core, publish_delay_s: float | None = None) -> SigningKey:
    _stored_keys_only(core)
    if publish_delay_s is not None and not 0 <= publish_delay_s <= 30 * 24 * 3600:
        raise InvalidRequest("publish_delay_s must be between 0 and 30 days")
    return await core.keys.rotate(publish_delay_s, core.clock())


async def retire_key(core: Core, kid: str) -> SigningKey:
    _stored_keys_only(core)
    try:
        return await core.keys.retire(kid, core.clock())
    except KeyError:
        raise NotFound(f"key {kid[:80]!r} not found") from None


def _stored_keys_only(core: Core) -> None:
    if core.settings.signing_keys_dir is not None:
        raise FailedPrecondition("keys come from NATIVE_IAM_SIGNING_KEYS_DIR; change the files instead")


# --- paging --------------------------------------------------------------------------------


def _encode_token(*parts: str) -> str:
    raw = "\x00".join(parts).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_token(token: str) -> tuple[str, str]:
    try:
        parts = base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8").split("\x00")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidRequest("page_token is not valid") from None
    if len(parts) != 2:
        raise InvalidRequest("page_token is not valid")
    return parts[0], parts[1]
