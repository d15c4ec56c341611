"""RP-initiated logout (/oauth2/logout): id_token_hint audience vs client_id (seed 003), registered
post-logout URIs only, state passed back, the login session ended."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.token_service.authorize.conftest import LOGOUT_REDIRECT, Browser, hidden_fields, redirect_params
from tests.token_service.authorize.test_flow import exchange
from token_service.id_tokens import sign_id_token


async def _tokens(
    browser: Browser, client_id: str = "webapp", redirect_uri: str = "https://web.example/callback"
) -> dict:
    response = await browser.authorize(client_id, redirect_uri)
    if "Sign in" in response.text:
        response = await browser.login()
    if "Allow access?" in response.text:
        response = await browser.consent()
    params = redirect_params(response)
    result = await exchange(
        browser, client_id, params["code"], browser.verifiers[params["state"]].verifier, redirect_uri
    )
    return result.json()


def _error_page(response: httpx.Response) -> None:
    assert response.status_code == 400 and "location" not in response.headers and "Cannot continue" in response.text


async def test_logout_with_hint_redirects_with_state_and_ends_the_session(browser: Browser) -> None:
    tokens = await _tokens(browser)
    response = await browser.http.get(
        "/oauth2/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "client_id": "webapp",
            "post_logout_redirect_uri": LOGOUT_REDIRECT,
            "state": "bye-1",
        },
    )
    assert response.status_code == 303 and response.headers["location"] == f"{LOGOUT_REDIRECT}?state=bye-1"
    assert "max-age=0" in response.headers["set-cookie"].lower() or "expires=" in response.headers["set-cookie"].lower()
    page = await browser.authorize()  # signed out: the login page again
    assert "Sign in" in page.text


async def test_logout_with_another_clients_id_token_is_refused(browser: Browser) -> None:
    tokens = await _tokens(browser, "other", "https://other.example/cb")
    _error_page(
        await browser.http.get(
            "/oauth2/logout",
            params={
                "id_token_hint": tokens["id_token"],
                "client_id": "webapp",
                "post_logout_redirect_uri": LOGOUT_REDIRECT,
            },
        )
    )
    assert "code" in redirect_params(await browser.authorize("other", "https://other.example/cb"))  # still signed in


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/",
        LOGOUT_REDIRECT + "/",
        LOGOUT_REDIRECT + "?next=https://evil.example",
        "https://web.example/callback",  # a redirect URI, not a post-logout one
        "https://other.example/bye",  # another client's post-logout URI
        "//evil.example",
    ],
)
async def test_unregistered_post_logout_uri_is_refused(browser: Browser, uri: str) -> None:
    tokens = await _tokens(browser)
    _error_page(
        await browser.http.get(
            "/oauth2/logout", params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": uri}
        )
    )


async def test_post_logout_uri_needs_a_client(browser: Browser) -> None:
    _error_page(await browser.http.get("/oauth2/logout", params={"post_logout_redirect_uri": LOGOUT_REDIRECT}))


async def test_access_token_is_not_an_id_token_hint(browser: Browser) -> None:
    tokens = await _tokens(browser)
    _error_page(await browser.http.get("/oauth2/logout", params={"id_token_hint": tokens["access_token"]}))


async def test_forged_hint_is_refused(browser: Browser) -> None:
    tokens = await _tokens(browser)
    header, payload, signature = tokens["id_token"].split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    _error_page(await browser.http.get("/oauth2/logout", params={"id_token_hint": forged}))


async def test_expired_hint_is_accepted(browser: Browser) -> None:
    await _tokens(browser)
    core = browser.service.core
    old = sign_id_token(
        core.keys,
        issuer=core.settings.issuer,
        subject="alice",
        namespace="",
        client_id="webapp",
        issued_at=int(time.time()) - 7200,
        ttl_s=300,
        auth_time=None,
        access_token="x",
    )
    response = await browser.http.post(
        "/oauth2/logout", data={"id_token_hint": old, "post_logout_redirect_uri": LOGOUT_REDIRECT}
    )
    assert response.status_code == 303 and response.headers["location"] == LOGOUT_REDIRECT


async def test_without_hint_the_user_confirms_with_a_csrf_token(browser: Browser) -> None:
    await _tokens(browser)
    confirm = await browser.http.get(
        "/oauth2/logout", params={"client_id": "webapp", "post_logout_redirect_uri": LOGOUT_REDIRECT, "state": "s"}
    )
    assert confirm.status_code == 200 and "Sign out?" in confirm.text
    fields = hidden_fields(confirm.text)
    assert fields["post_logout_redirect_uri"] == LOGOUT_REDIRECT and fields["state"] == "s"
    forged = {**fields, "csrf_token": "forged", "confirm": "yes"}
    _error_page(await browser.http.post("/oauth2/logout", data=forged))
    done = await browser.http.post("/oauth2/logout", data={**fields, "confirm": "yes"})
    assert done.status_code == 303 and done.headers["location"] == f"{LOGOUT_REDIRECT}?state=s"
    assert "Sign in" in (await browser.authorize()).text


async def test_another_users_hint_ends_nobody_s_session(browser: Browser) -> None:
    await _tokens(browser)  # alice signed in
    core = browser.service.core
    bobs = sign_id_token(
        core.keys, issuer=core.settings.issuer, subject="bob", namespace="shop", client_id="webapp",
        issued_at=int(time.time()), ttl_s=300, auth_time=None, access_token="x",
    )  # fmt: skip
    response = await browser.http.get("/oauth2/logout", params={"id_token_hint": bobs})
    assert response.status_code == 200 and "signed out" in response.text
    assert "code" in redirect_params(await browser.authorize())  # alice's session survived
