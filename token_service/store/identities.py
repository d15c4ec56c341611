"""Statements on identities and what hangs off them (tables ``identities``, ``passwords``,
``policies``): every one the token service runs, once."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Row, and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from token_service.store.tables import identities, passwords, policies

__all__ = [
    "create",
    "delete",
    "for_grant",
    "grants",
    "id_of",
    "is_active",
    "login_record",
    "login_record_async",
    "page",
    "set_active",
    "set_password",
    "set_password_enabled",
    "set_policy",
    "set_policy_cutoff",
    "state",
]

_LOGIN_RECORD = (
    select(identities.c.id, identities.c.active, passwords.c.hash, passwords.c.enabled)
    .select_from(identities.outerjoin(passwords, passwords.c.identity_id == identities.c.id))
    .where(identities.c.namespace == bindparam("namespace"), identities.c.name == bindparam("name"))
)
_FOR_GRANT = (
    select(
        identities.c.id,
        identities.c.uid,
        identities.c.namespace,
        identities.c.name,
        identities.c.active,
        identities.c.policy_cutoff_at,
        policies.c.grants,
    )
    .select_from(identities.outerjoin(policies, policies.c.identity_id == identities.c.id))
    .where(identities.c.id == bindparam("identity_id"))
    .with_for_update(read=True, of=identities)
)
_IS_ACTIVE = select(identities.c.active).where(
    identities.c.id == bindparam("identity_id"), identities.c.uid == bindparam("uid")
)

# --- grant path (sync) ----------------------------------------------------------------------


def login_record(conn: Connection, namespace: str, name: str) -> Row[Any] | None:
    """Identity id/active plus its password hash and whether password auth is enabled."""
    return conn.execute(_LOGIN_RECORD, {"namespace": namespace, "name": name}).first()


async def login_record_async(conn: AsyncConnection, namespace: str, name: str) -> Row[Any] | None:
    """:func:`login_record` on an async connection (admin)."""
    return (await conn.execute(_LOGIN_RECORD, {"namespace": namespace, "name": name})).first()


def for_grant(conn: Connection, identity_id: int) -> Row[Any] | None:
    """The identity and its policy grants, share-locked until the grant commits.

    The lock makes "disable identity" and "issue a token" serialize on PostgreSQL: either the
    disable waits for the grant (and its cut-off then covers the new token) or the grant sees the
    identity disabled. SQLite serializes writers anyway.
    """
    return conn.execute(_FOR_GRANT, {"identity_id": identity_id}).first()


async def is_active(conn: AsyncConnection, identity_id: int, uid: str | None) -> bool | None:
    """Whether the identity incarnation (id *and* uid) is active; None when it is gone."""
    row = (await conn.execute(_IS_ACTIVE, {"identity_id": identity_id, "uid": uid})).first()
    return None if row is None else bool(row.active)


# --- administration (async) -----------------------------------------------------------------


async def id_of(conn: AsyncConnection, namespace: str, name: str, lock: bool = False) -> int | None:
    """The identity's row id; ``lock`` takes its row lock until commit (PostgreSQL)."""
    query = select(identities.c.id).where(identities.c.namespace == namespace, identities.c.name == name)
    if lock:
        query = query.with_for_update(of=identities)
    found = (await conn.execute(query)).scalar()
    return None if found is None else int(found)


async def create(conn: AsyncConnection, namespace: str, name: str, active: bool, now: float) -> int | None:
    """Insert the identity with an empty policy; its row id, or None when the name is taken (the
    transaction is then unusable on PostgreSQL: end it)."""
    try:
        result = await conn.execute(
            identities.insert().values(
                # A fresh uid per row: tokens of an earlier identity of this name never match it.
                uid=secrets.token_hex(16),
                namespace=namespace,
                name=name,
                active=active,
                created_at=now,
                updated_at=now,
            )
        )
    except IntegrityError:
        return None
    identity_id = int(result.inserted_primary_key[0])
    await conn.execute(policies.insert().values(identity_id=identity_id, grants="", updated_at=now))
    return identity_id


async def page(
    conn: AsyncConnection,
    *,
    namespace: str | None,
    name: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int,
) -> list[Row[Any]]:
    """Identities with password and policy, ordered by (namespace, name): in ``namespace`` (None:
    every one), named ``name`` (None: any), strictly after the keyset position ``after``."""
    query = (
        select(
            identities.c.namespace,
            identities.c.name,
            identities.c.active,
            identities.c.created_at,
            passwords.c.enabled,
            passwords.c.identity_id.label("password_row"),
            policies.c.grants,
        )
        .select_from(
            identities.outerjoin(passwords, passwords.c.identity_id == identities.c.id).outerjoin(
                policies, policies.c.identity_id == identities.c.id
            )
        )
        .order_by(identities.c.namespace, identities.c.name)
        .limit(limit)
    )
    if namespace is not None:
        query = query.where(identities.c.namespace == namespace)
    if name is not None:
        query = query.where(identities.c.name == name)
    if after is not None:
        after_ns, after_name = after
        query = query.where(
            or_(
                identities.c.namespace > after_ns,
                and_(identities.c.namespace == after_ns, identities.c.name > after_name),
            )
        )
    return list((await conn.execute(query)).all())


async def set_password(conn: AsyncConnection, identity_id: int, hashed: str, enabled: bool, now: float) -> None:
    """Set the identity's password hash (a row is created for the first one)."""
    changed = await conn.execute(
        update(passwords)
        .where(passwords.c.identity_id == identity_id)
        .values(hash=hashed, enabled=enabled, updated_at=now)
    )
    if changed.rowcount == 0:
        await conn.execute(
            passwords.insert().values(identity_id=identity_id, hash=hashed, enabled=enabled, updated_at=now)
        )


async def set_password_enabled(conn: AsyncConnection, identity_id: int, enabled: bool, now: float) -> bool:
    """Enable or disable the password; False when the identity has none."""
    changed = await conn.execute(
        update(passwords).where(passwords.c.identity_id == identity_id).values(enabled=enabled, updated_at=now)
    )
    return bool(changed.rowcount)


async def grants(conn: AsyncConnection, identity_id: int) -> str | None:
    """The policy's grants (space-separated); None when the identity has no policy row."""
    found = (await conn.execute(select(policies.c.grants).where(policies.c.identity_id == identity_id))).scalar()
    return None if found is None else str(found)


async def set_policy(conn: AsyncConnection, identity_id: int, grants_text: str, now: float, *, exists: bool) -> None:
    """Write the policy's grants; ``exists``: whether :func:`grants` found a row to update."""
    values = {"grants": grants_text, "updated_at": now}
    if exists:
        await conn.execute(update(policies).where(policies.c.identity_id == identity_id).values(**values))
    else:
        await conn.execute(policies.insert().values(identity_id=identity_id, **values))


# --- "dead" state: written only through token_service.revocations (sync) ---------------------


def state(conn: Connection, identity_id: int) -> Row[Any] | None:
    """The identity's (active, policy_cutoff_at)."""
    return conn.execute(
        select(identities.c.active, identities.c.policy_cutoff_at).where(identities.c.id == identity_id)
    ).first()


def set_active(conn: Connection, identity_id: int, active: bool, now: float) -> None:
    conn.execute(
        update(identities)
        .where(identities.c.id == identity_id)
        .values(active=active, updated_at=now, disabled_at=None if active else now)
    )


def set_policy_cutoff(conn: Connection, identity_id: int, cutoff: int) -> None:
    conn.execute(update(identities).where(identities.c.id == identity_id).values(policy_cutoff_at=cutoff))


def delete(conn: Connection, identity_id: int) -> None:
    conn.execute(identities.delete().where(identities.c.id == identity_id))
