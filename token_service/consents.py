"""Consent: which scopes an identity has let a (not first-party) client have.

Remembered durably (table ``consents``) per identity incarnation and client, as the union of the
scopes approved; a request is covered when every scope it asks for is in that union, so a new
scope asks again (issue 14). Revoking a consent (admin API) only makes the next authorization ask
again; tokens already issued stay valid until revoked through the Tokens API or expired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from native_iam.limits import MAX_PAGE_SIZE
from token_service.core import Core
from token_service.store import consents as rows

__all__ = ["Consent", "grant", "is_covered", "list_consents", "revoke"]


@dataclass(frozen=True, slots=True)
class Consent:
    namespace: str
    identity: str
    client_id: str
    scopes: tuple[str, ...]
    granted_at: float


async def is_covered(core: Core, identity_id: int, identity_uid: str, client_id: str, scopes: Sequence[str]) -> bool:
    """Whether the identity already approved every one of ``scopes`` for the client."""
    granted = await core.store.run_read(rows.granted_scopes, identity_id, identity_uid, client_id)
    return granted is not None and set(scopes) <= set(granted.split())


async def grant(core: Core, identity_id: int, identity_uid: str, client_id: str, scopes: Sequence[str]) -> None:
    """Remember that the identity approved ``scopes`` for the client (added to what it approved before)."""

    def write(conn: Connection, now: float) -> None:
        before = rows.granted_scopes(conn, identity_id, identity_uid, client_id)
        union = sorted(set(scopes) | set((before or "").split()))
        rows.upsert(conn, identity_id, identity_uid, client_id, " ".join(union), now)

    await core.store.run_write(write, core.clock())


async def list_consents(
    core: Core, *, namespace: str | None = None, identity: str | None = None, client_id: str | None = None
) -> list[Consent]:
    """Consents, filtered by whatever is given (at most MAX_PAGE_SIZE)."""
    async with core.store.read() as conn:
        found = await rows.listing(
            conn, namespace=namespace, identity=identity, client_id=client_id, limit=MAX_PAGE_SIZE
        )
    return [Consent(r.namespace, r.name, r.client_id, tuple(r.scopes.split()), float(r.granted_at)) for r in found]


async def revoke(core: Core, *, namespace: str, identity: str, client_id: str | None) -> int:
    """Forget the identity's consent for the client (all clients when None); how many were forgotten."""
    async with core.store.write() as conn:
        return await rows.delete_consent(conn, namespace=namespace, identity=identity, client_id=client_id)
