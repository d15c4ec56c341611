"""OAuth clients in the database (table ``oauth_clients``, migrations 0100, 0110, 0140) and the server key.

Reads go through a small per-process cache: the token endpoint looks its client up on every
grant, and a client changes rarely. A change made through another replica is seen here within
:data:`CACHE_TTL_S`; a change made through this process is seen at once.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Final

from cachetools import TTLCache
from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from token_service.clients import AuthMethod, GrantType, OAuthClient, generate_server_key
from token_service.errors import AlreadyExists, NotFound
from token_service.store.db import Store
from token_service.store.tables import oauth_clients, server_secrets

__all__ = [
    "CACHE_TTL_S",
    "ClientRepository",
    "delete_sync",
    "for_grant",
    "locked",
    "oauth_clients",
    "server_secrets",
    "set_enabled_sync",
    "set_scopes_sync",
]

#: Seconds a client definition may be served from this process's cache.
CACHE_TTL_S: Final = 5.0
#: Name of the generated HMAC key row in ``server_secrets``.
CLIENT_SECRET_KEY_NAME: Final = "client_secret_hmac_key"


def _row_to_client(row: object) -> OAuthClient:
    m = row._mapping  # type: ignore[attr-defined]
    return OAuthClient(
        client_id=m["client_id"],
        auth_method=AuthMethod(m["auth_method"]),
        secret_hash=m["secret_hash"],
        name=m["name"],
        grant_types=frozenset(GrantType(g) for g in m["grant_types"].split()),
        audiences=tuple(json.loads(m["audiences"])),
        access_token_ttl_s=m["access_token_ttl_s"],
        refresh_token_ttl_s=m["refresh_token_ttl_s"],
        rotate_refresh_tokens=bool(m["rotate_refresh_tokens"]),
        introspect_all_tokens=bool(m["introspect_all_tokens"]),
        redirect_uris=tuple(json.loads(m["redirect_uris"])),
        post_logout_redirect_uris=tuple(json.loads(m["post_logout_redirect_uris"])),
        first_party=bool(m["first_party"]),
        scopes=tuple(m["scopes"].split()),
        enabled=bool(m["enabled"]),
        exchange_audiences=tuple(json.loads(m["exchange_audiences"])),
        created_at=int(m["created_at"]),
    )


_FOR_GRANT = (
    select(oauth_clients.c.enabled, oauth_clients.c.created_at, oauth_clients.c.scopes)
    .where(oauth_clients.c.client_id == bindparam("client_id"))
    .with_for_update(read=True)
)
_LOCKED = select(oauth_clients).where(oauth_clients.c.client_id == bindparam("client_id")).with_for_update()


# --- grant path (sync) ----------------------------------------------------------------------


def for_grant(conn: Connection, client_id: str) -> Row[Any] | None:
    """The client's (enabled, created_at, scopes), share-locked until the grant commits.

    As :func:`token_service.store.identities.for_grant` for identities: "disable the client" and
    "issue a token to it" serialize on PostgreSQL, so either the disable's cut-off covers the
    new token or the grant sees the client disabled. SQLite serializes writers anyway.
    """
    return conn.execute(_FOR_GRANT, {"client_id": client_id}).first()


# --- administration (sync: in the transaction that also writes the revocation) --------------


def locked(conn: Connection, client_id: str) -> OAuthClient | None:
    """The client under its row lock (PostgreSQL), or None."""
    row = conn.execute(_LOCKED, {"client_id": client_id}).first()
    return None if row is None else _row_to_client(row)


def set_scopes_sync(conn: Connection, client_id: str, scopes: tuple[str, ...]) -> bool:
    """Replace the client's scope policy; False when there is no such client."""
    result = conn.execute(
        update(oauth_clients).where(oauth_clients.c.client_id == client_id).values(scopes=" ".join(scopes))
    )
    return result.rowcount > 0


def set_enabled_sync(conn: Connection, client_id: str, enabled: bool) -> None:
    conn.execute(update(oauth_clients).where(oauth_clients.c.client_id == client_id).values(enabled=enabled))


def delete_sync(conn: Connection, client_id: str) -> bool:
    """Delete the client's row; False when there was none."""
    result = conn.execute(delete(oauth_clients).where(oauth_clients.c.client_id == client_id))
    return result.rowcount > 0


class ClientRepository:
    """Create, read, list and delete OAuth clients; implements :class:`~token_service.clients.ClientStore`."""

    def __init__(self, store: Store, cache_ttl_s: float = CACHE_TTL_S) -> None:
        self.store = store
        self._cache: TTLCache[str, OAuthClient | None] = TTLCache(maxsize=4096, ttl=cache_ttl_s)

    async def get_client(self, client_id: str) -> OAuthClient | None:
        try:
            return self._cache[client_id]
        except KeyError:
            pass
        async with self.store.read() as conn:
            row = await _client_row(conn, client_id)
        client = None if row is None else _row_to_client(row)
        self._cache[client_id] = client
        return client

    async def create(self, client: OAuthClient, now: float | None = None) -> OAuthClient:
        """Insert ``client``, created ``now`` (default: the wall clock); AlreadyExists when taken."""
        created = dataclasses.replace(client, created_at=int(time.time() if now is None else now))
        try:
            async with self.store.write() as conn:
                await conn.execute(insert(oauth_clients).values(**_values(created)))
        except IntegrityError as exc:
            raise AlreadyExists(f"client {client.client_id!r} already exists") from exc
        self._cache.pop(client.client_id, None)
        return created

    async def list(self) -> list[OAuthClient]:
        async with self.store.read() as conn:
            rows = (await conn.execute(select(oauth_clients).order_by(oauth_clients.c.client_id))).all()
        return [_row_to_client(r) for r in rows]

    async def get(self, client_id: str) -> OAuthClient:
        """The client (uncached), or NotFound."""
        async with self.store.read() as conn:
            row = await _client_row(conn, client_id)
        if row is None:
            raise NotFound(f"client {client_id!r} not found")
        return _row_to_client(row)

    async def set_browser_settings(
        self,
        client_id: str,
        *,
        redirect_uris: tuple[str, ...],
        post_logout_redirect_uris: tuple[str, ...],
        first_party: bool | None,
    ) -> OAuthClient:
        """Replace the client's redirect URI lists (and its first-party flag unless None); NotFound.

        Validation (:func:`token_service.clients.browser_redirects`) is the caller's.
        """
        values: dict[str, object] = {
            "redirect_uris": json.dumps(list(redirect_uris)),
            "post_logout_redirect_uris": json.dumps(list(post_logout_redirect_uris)),
        }
        if first_party is not None:
            values["first_party"] = first_party
        async with self.store.write() as conn:
            result = await conn.execute(
                update(oauth_clients).where(oauth_clients.c.client_id == client_id).values(**values)
            )
            row = await _client_row(conn, client_id) if result.rowcount else None
        self._cache.pop(client_id, None)
        if row is None:
            raise NotFound(f"client {client_id!r} not found")
        return _row_to_client(row)

    def forget(self, client_id: str) -> None:
        """Drop the cached definition after a change made through this process (seen at once here)."""
        self._cache.pop(client_id, None)


async def _client_row(conn: AsyncConnection, client_id: str) -> Row[Any] | None:
    return (await conn.execute(select(oauth_clients).where(oauth_clients.c.client_id == client_id))).first()


def _values(client: OAuthClient) -> dict[str, object]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "auth_method": client.auth_method.value,
        "secret_hash": client.secret_hash,
        "grant_types": " ".join(sorted(g.value for g in client.grant_types)),
        "audiences": json.dumps(list(client.audiences)),
        "access_token_ttl_s": client.access_token_ttl_s,
        "refresh_token_ttl_s": client.refresh_token_ttl_s,
        "rotate_refresh_tokens": client.rotate_refresh_tokens,
        "introspect_all_tokens": client.introspect_all_tokens,
        "redirect_uris": json.dumps(list(client.redirect_uris)),
        "post_logout_redirect_uris": json.dumps(list(client.post_logout_redirect_uris)),
        "first_party": client.first_party,
        "scopes": " ".join(client.scopes),
        "enabled": client.enabled,
        "exchange_audiences": json.dumps(list(client.exchange_audiences)),
        "created_at": float(client.created_at),
    }


async def client_secret_key(store: Store, configured: bytes | None) -> bytes:
    """The HMAC key for client secrets: NATIVE_IAM_CLIENT_SECRET_KEY, else generated once and stored.

    Replicas starting together race to insert; the loser reads the winner's key.
    """
    if configured:
        return configured
    async with store.read() as conn:
        value = await _stored_key(conn)
    if value is not None:
        return value
    try:
        async with store.write() as conn:
            await conn.execute(
                insert(server_secrets).values(
                    name=CLIENT_SECRET_KEY_NAME, value=generate_server_key().hex(), created_at=time.time()
                )
            )
    except IntegrityError:
        pass  # another replica won the race; its key is the key
    async with store.read() as conn:
        value = await _stored_key(conn)
    if value is None:  # pragma: no cover - the insert above succeeded or a row exists
        raise RuntimeError("client secret key could not be stored")
    return value


async def _stored_key(conn: AsyncConnection) -> bytes | None:
    row = (
        await conn.execute(select(server_secrets.c.value).where(server_secrets.c.name == CLIENT_SECRET_KEY_NAME))
    ).first()
    return None if row is None else bytes.fromhex(row[0])
