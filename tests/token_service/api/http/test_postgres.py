"""The OAuth HTTP endpoints on a real PostgreSQL: rotation races take row locks there, not SQLite's writer queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from native_iam.limits import MAX_CLIENT_ID_LENGTH
from tests.token_service.api.http.conftest import GRACE_S, OAuthService, password_grant, start_oauth_service

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_service(postgres_url: str) -> AsyncIterator[OAuthService]:
    service = await start_oauth_service(postgres_url)
    yield service
    await service.app.stop(0)


async def _refresh(client: httpx.AsyncClient, service: OAuthService, token: str) -> httpx.Response:
    return await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers=service.basic("rotating"),
    )


async def test_50_concurrent_refreshes_on_postgres(pg_service: OAuthService) -> None:
    """50 concurrent refreshes of one token on PostgreSQL: all 200 with distinct tokens, no 5xx."""
    async with httpx.AsyncClient(base_url=pg_service.url, limits=httpx.Limits(max_connections=50)) as http:
        first = (await password_grant(http, pg_service, "rotating", scope="orders:read")).json()
        responses = await asyncio.gather(*(_refresh(http, pg_service, first["refresh_token"]) for _ in range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    assert len({r.json()["refresh_token"] for r in responses}) == 50


async def test_replay_after_grace_revokes_family_on_postgres(pg_service: OAuthService) -> None:
    """On PostgreSQL too, a replay after the grace window revokes the family: the child stops working."""
    async with httpx.AsyncClient(base_url=pg_service.url) as http:
        first = (await password_grant(http, pg_service, "rotating", scope="orders:read")).json()
        child = (await _refresh(http, pg_service, first["refresh_token"])).json()["refresh_token"]
        later = pg_service.core.clock() + GRACE_S + 1
        pg_service.core.clock = lambda: later
        assert (await _refresh(http, pg_service, first["refresh_token"])).json()["error"] == "invalid_grant"
        refused = await _refresh(http, pg_service, child)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert jwt.decode(child, options={"verify_signature": False})["fam"]


async def test_revoke_and_introspect_on_postgres(pg_service: OAuthService) -> None:
    """Revocation (UPDATE … RETURNING + feed events) works on PostgreSQL."""
    async with httpx.AsyncClient(base_url=pg_service.url) as http:
        tokens = (await password_grant(http, pg_service, scope="orders:read")).json()
        await http.post("/oauth2/revoke", data={"token": tokens["refresh_token"]}, headers=pg_service.basic("web"))
        body = (
            await http.post(
                "/oauth2/introspect", data={"token": tokens["access_token"]}, headers=pg_service.basic("web")
            )
        ).json()
    assert body == {"active": False}


async def test_two_replicas_share_clients_and_revocations(pg_service: OAuthService, postgres_url: str) -> None:
    """A second replica on the same PostgreSQL accepts the clients and secrets registered through the
    first (same stored secret key) and sees a revocation made through the first."""
    from token_service.app import TokenServiceApp
    from token_service.testing import settings_for_tests

    other = TokenServiceApp(settings_for_tests(postgres_url))
    await other.start()
    try:
        assert other.http.client_secret_key == pg_service.http.client_secret_key
        async with (
            httpx.AsyncClient(base_url=other.http.url) as on_b,
            httpx.AsyncClient(base_url=pg_service.url) as on_a,
        ):
            tokens = (await password_grant(on_b, pg_service, scope="orders:read")).json()
            await on_a.post("/oauth2/revoke", data={"token": tokens["access_token"]}, headers=pg_service.basic("web"))
            seen_by_b = await on_b.post(
                "/oauth2/introspect", data={"token": tokens["access_token"]}, headers=pg_service.basic("web")
            )
        assert seen_by_b.json() == {"active": False}
    finally:
        await other.stop(0)


async def test_longest_client_id_gets_tokens_on_postgres(pg_service: OAuthService) -> None:
    """A client_id of MAX_CLIENT_ID_LENGTH characters is accepted at registration, so its tokens
    must fit the tokens table on PostgreSQL too (VARCHAR lengths are enforced there, not on SQLite)."""
    client_id = "c" * MAX_CLIENT_ID_LENGTH
    await pg_service.register(client_id, grant_types=("password",))
    async with httpx.AsyncClient(base_url=pg_service.url) as http:
        response = await password_grant(http, pg_service, client_id, scope="orders:read")
    assert response.status_code == 200, response.text
