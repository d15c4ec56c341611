"""token_service/store/clients.py: OAuth clients and the client-secret key in the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from token_service import clients
from token_service.errors import AlreadyExists
from token_service.store import Store
from token_service.store.clients import ClientRepository, client_secret_key, delete_sync

KEY = b"k" * 32


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite:///{tmp_path}/clients.db")
    await store.migrate()
    yield store
    await store.close()


async def test_created_client_reads_back_equal(store: Store) -> None:
    """Every field of a client survives the round trip through the table."""
    repo = ClientRepository(store)
    client, _ = clients.new_client(
        "app",
        server_key=KEY,
        name="App",
        grant_types=["password"],
        audiences=["https://api.example", "orders"],
        access_token_ttl_s=60,
        refresh_token_ttl_s=600,
        rotate_refresh_tokens=True,
        introspect_all_tokens=True,
    )
    created = await repo.create(client)
    assert await repo.get("app") == created
    assert await repo.get_client("app") == created
    assert created.created_at > 0


async def test_duplicate_client_is_already_exists(store: Store) -> None:
    """A second client with the same id is refused with AlreadyExists."""
    repo = ClientRepository(store)
    client, _ = clients.new_client("app", server_key=KEY)
    await repo.create(client)
    with pytest.raises(AlreadyExists):
        await repo.create(client)


async def test_deleted_client_is_gone_at_once_in_this_process(store: Store) -> None:
    """After a delete (admin.clients.delete_client: delete_sync, then forget), get_client answers
    None immediately (the cache entry is dropped); a second delete finds nothing."""
    repo = ClientRepository(store)
    client, _ = clients.new_client("app", server_key=KEY)
    await repo.create(client)
    assert await repo.get_client("app") is not None
    async with store.write() as conn:
        assert await conn.run_sync(delete_sync, "app")
    repo.forget("app")
    assert await repo.get_client("app") is None
    async with store.write() as conn:
        assert not await conn.run_sync(delete_sync, "app")


async def test_list_is_sorted_by_client_id(store: Store) -> None:
    """list() returns every client ordered by client_id."""
    repo = ClientRepository(store)
    for name in ("b", "a", "c"):
        await repo.create(clients.new_client(name, server_key=KEY)[0])
    assert [c.client_id for c in await repo.list()] == ["a", "b", "c"]


async def test_generated_secret_key_is_stored_once(store: Store) -> None:
    """Without NATIVE_IAM_CLIENT_SECRET_KEY a 32-byte key is generated once and reused."""
    first = await client_secret_key(store, None)
    assert len(first) == 32
    assert await client_secret_key(store, None) == first


async def test_configured_secret_key_wins(store: Store) -> None:
    """A configured key is used as is and nothing is generated."""
    assert await client_secret_key(store, b"configured-key-0123456789abcdef!") == b"configured-key-0123456789abcdef!"


async def test_exchange_audiences_round_trip_on_both_databases(db_url: str) -> None:
    """Migration 0140's column keeps a client's exchange audiences (SQLite and PostgreSQL)."""
    store = Store(db_url)
    await store.migrate()
    try:
        repo = ClientRepository(store)
        client, _ = clients.new_client(
            "exchanger",
            server_key=KEY,
            auth_method="kubernetes_service_account",
            grant_types=[clients.GrantType.TOKEN_EXCHANGE],
            exchange_audiences=["orders", "https://payments.example"],
        )
        created = await repo.create(client)
        assert (await repo.get("exchanger")).exchange_audiences == ("orders", "https://payments.example")
        assert await repo.get("exchanger") == created
        plain, _ = clients.new_client("plain", server_key=KEY)
        assert (await repo.create(plain)).exchange_audiences == ()
    finally:
        await store.close()
