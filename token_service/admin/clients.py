"""Administering OAuth clients beyond their registration: scope policy, enable/disable, delete.

Transport-agnostic like :mod:`token_service.admin.service` (the admin gRPC ``Clients`` servicer
and the CLI call these). Disabling and deleting revoke through :mod:`token_service.revocations`
(the only writer of revocations), in the same transaction as the row change, so the token
service's CheckAccess and every sidecar stop accepting the client's tokens together.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable

from token_service import revocations
from token_service.admin.service import validate_grants
from token_service.clients import OAuthClient
from token_service.core import Core
from token_service.errors import NotFound
from token_service.store import clients as stored_clients

__all__ = ["create_client", "delete_client", "set_client_enabled", "set_client_scopes"]


async def create_client(core: Core, client: OAuthClient) -> OAuthClient:
    """Register ``client`` (AlreadyExists when its id is taken), scope policy validated.

    A client registered again within a second of a deletion of its id waits for the next second
    (less than one): the deletion's cut-off covers every ``iat`` up to its second, and the new
    client's ``created_at`` (which the token service compares with ``iat``) must lie after it, so
    that no token of the old client ever passes as the new one's.
    """
    client = dataclasses.replace(client, scopes=validate_grants(client.scopes))
    now = core.clock()
    async with core.store.read() as conn:
        cutoff = await revocations.last_deletion_cutoff(
            conn, "", client.client_id, now, core.settings.max_token_ttl_s, client=True
        )
    if cutoff is not None and 0 < (wait := cutoff + 1 - now) <= 1:
        await asyncio.sleep(wait)
    return await core.clients.create(client, now=core.clock())


async def set_client_scopes(core: Core, client_id: str, scopes: Iterable[str]) -> OAuthClient:
    """Replace the client's scope policy (tokens already issued keep their scopes until they expire)."""
    policy = validate_grants(scopes)
    async with core.store.write() as conn:
        found = await conn.run_sync(stored_clients.set_scopes_sync, client_id, policy)
    core.clients.forget(client_id)
    if not found:
        raise NotFound(f"client {client_id!r} not found")
    return await core.clients.get(client_id)


async def set_client_enabled(core: Core, client_id: str, enabled: bool) -> OAuthClient:
    """Enable or disable the client; disabling revokes its tokens through the feed."""
    try:
        async with core.store.write() as conn:
            await conn.run_sync(
                revocations.set_client_enabled, client_id, enabled, core.clock, core.settings.max_token_ttl_s
            )
    finally:
        core.clients.forget(client_id)
    return await core.clients.get(client_id)


async def delete_client(core: Core, client_id: str) -> None:
    """Delete the client; its tokens are revoked for good, also against a client registered later
    under the same id."""
    try:
        async with core.store.write() as conn:
            await conn.run_sync(revocations.delete_client, client_id, core.clock, core.settings.max_token_ttl_s)
    finally:
        core.clients.forget(client_id)
