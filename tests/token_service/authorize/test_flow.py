"""The authorization code flow over the running token service: authorize → login → consent → code → tokens."""

from __future__ import annotations

import httpx

from tests.token_service.api.http.conftest import token_request
from tests.token_service.authorize.conftest import WEB_REDIRECT, Browser, redirect_params


async def exchange(
    browser: Browser, client_id: str, code: str, verifier: str, redirect_uri: str = WEB_REDIRECT
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    return await token_request(browser.http, browser.service, client_id, data)


async def test_full_flow_with_consent(browser: Browser) -> None:
    page = await browser.authorize(nonce="n-123")
    assert page.status_code == 200 and "Sign in" in page.text and "Order Desk" in page.text
    consent = await browser.login()
    assert consent.status_code == 200 and "Allow access?" in consent.text and "orders:read" in consent.text
    params = redirect_params(await browser.consent())
    state = next(iter(browser.verifiers))
    assert params["state"] == state and params["iss"] == browser.service.core.settings.issuer
    tokens = await exchange(browser, "webapp", params["code"], browser.verifiers[state].verifier)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["scope"] == "openid orders:read" and body["refresh_token"] and body["id_token"]
