"""The authorization code flow on a real PostgreSQL: codes, sessions and consents in its tables, and
concurrent redemptions of one code (one winner at most; a replay kills what was issued)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.api.http.conftest import start_oauth_service
from tests.token_service.authorize.conftest import Browser, redirect_params, register_flow_clients
from tests.token_service.authorize.test_flow import exchange

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_browser(postgres_url: str) -> AsyncIterator[Browser]:
    service = await register_flow_clients(await start_oauth_service(postgres_url))
    try:
        async with httpx.AsyncClient(base_url=service.url, limits=httpx.Limits(max_connections=20)) as client:
            yield Browser(client, service)
    finally:
        await service.app.stop(0)


async def test_flow_and_remembered_consent_on_postgres(pg_browser: Browser) -> None:
    await pg_browser.authorize(nonce="pg")
    await pg_browser.login()
    params = redirect_params(await pg_browser.consent())
    tokens = await exchange(pg_browser, "webapp", params["code"], pg_browser.verifiers[params["state"]].verifier)
    assert tokens.status_code == 200 and tokens.json()["id_token"]
    assert "code" in redirect_params(await pg_browser.authorize())  # consent remembered in the table


async def test_concurrent_redemptions_of_one_code_on_postgres(pg_browser: Browser) -> None:
    await concurrent_redemptions(pg_browser)


async def concurrent_redemptions(browser: Browser) -> None:
    """10 redemptions of one code at once: at most one 200, and since the others are replays,
    whatever the winner got is revoked (CheckAccess refuses it)."""
    await browser.authorize("portal")
    params = redirect_params(await browser.login())
    verifier = browser.verifiers[params["state"]].verifier
    responses = await asyncio.gather(*(exchange(browser, "portal", params["code"], verifier) for _ in range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) <= 1 and set(statuses) <= {200, 400}, statuses
    winners = [r.json()["access_token"] for r in responses if r.status_code == 200]
    async with grpc.aio.insecure_channel(browser.service.app.grpc_target) as channel:
        for token in winners:
            check = await oauth_pb2_grpc.OAuthStub(channel).CheckAccess(
                oauth_pb2.CheckAccessRequest(access_token=token)
            )
            assert check.status == oauth_pb2.CheckAccessResponse.TOKEN_DISABLED
