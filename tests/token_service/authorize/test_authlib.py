"""Authlib's AsyncOAuth2Client runs the authorization code flow unchanged against the running server
(the login form is posted by the test with httpx, as a user would); public and confidential clients."""

from __future__ import annotations

import secrets
import warnings

import jwt
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from tests.token_service.api.http.conftest import OAuthService
from tests.token_service.authorize.conftest import SPA_REDIRECT, WEB_REDIRECT, Browser


async def _sign_in(browser: Browser, url: str) -> str:
    """Open ``url`` as the user, sign in and consent; the Location the browser would follow."""
    page = await browser.http.get(url)
    browser.last = page
    if "Sign in" in page.text:
        page = await browser.login()
    if "Allow access?" in page.text:
        page = await browser.consent()
    assert page.status_code == 303, page.text[:300]
    return page.headers["location"]


async def test_confidential_client_with_authlib(flow_service: OAuthService, browser: Browser) -> None:
    base = flow_service.url
    verifier = secrets.token_urlsafe(48)
    async with AsyncOAuth2Client(
        "webapp",
        flow_service.secrets["webapp"],
        scope="openid orders:read",
        redirect_uri=WEB_REDIRECT,
        code_challenge_method="S256",
    ) as client:
        url, state = client.create_authorization_url(f"{base}/oauth2/authorize", code_verifier=verifier, nonce="n-1")
        location = await _sign_in(browser, url.removeprefix(base))
        token = await client.fetch_token(
            f"{base}/oauth2/token", authorization_response=location, code_verifier=verifier, state=state
        )
        assert token["scope"] == "openid orders:read" and token["refresh_token"]
        assert jwt.decode(token["id_token"], options={"verify_signature": False})["nonce"] == "n-1"
        userinfo = await client.get(f"{base}/oauth2/userinfo")
        assert userinfo.status_code == 200 and userinfo.json()["sub"] == "alice"
        refreshed = await client.refresh_token(f"{base}/oauth2/token")
        assert refreshed["access_token"] != token["access_token"]


async def test_public_client_with_authlib(flow_service: OAuthService, browser: Browser) -> None:
    base = flow_service.url
    verifier = secrets.token_urlsafe(48)
    async with AsyncOAuth2Client(
        "spa-app",
        token_endpoint_auth_method="none",
        scope="orders:read",
        redirect_uri=SPA_REDIRECT,
        code_challenge_method="S256",
    ) as client:
        url, state = client.create_authorization_url(f"{base}/oauth2/authorize", code_verifier=verifier)
        location = await _sign_in(browser, url.removeprefix(base))
        token = await client.fetch_token(
            f"{base}/oauth2/token", authorization_response=location, code_verifier=verifier, state=state
        )
        first_refresh = token["refresh_token"]
        rotated = await client.refresh_token(f"{base}/oauth2/token")
        assert rotated["refresh_token"] != first_refresh  # public clients rotate
