"""One test per refusal of the authorization code flow (issue 14): PKCE, code misuse, redirect URIs,
scopes, CSRF, open redirects. Real token service over HTTP; the "browser" is httpx with a cookie jar."""

from __future__ import annotations

import time

import grpc
import httpx
import pytest

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.authorize.conftest import SPA_REDIRECT, WEB_REDIRECT, Browser, hidden_fields, redirect_params
from tests.token_service.authorize.test_flow import exchange
from token_service.admin.clients import set_client_enabled


async def _code(
    browser: Browser, client_id: str = "webapp", redirect_uri: str = WEB_REDIRECT, **params: str
) -> tuple[str, str]:
    """A fresh code and its verifier (signing in and consenting as needed)."""
    response = await browser.authorize(client_id, redirect_uri, **params)
    if "Sign in" in response.text:
        response = await browser.login()
    if "Allow access?" in response.text:
        response = await browser.consent()
    state = list(browser.verifiers)[-1]
    return redirect_params(response)["code"], browser.verifiers[state].verifier


def _error_page(response: httpx.Response) -> None:
    """An HTML error page: no redirect anywhere."""
    assert response.status_code == 400 and "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html") and "Cannot continue" in response.text


# --- PKCE -------------------------------------------------------------------------------------


async def test_missing_pkce_is_invalid_request_at_the_redirect(browser: Browser) -> None:
    params = redirect_params(await browser.authorize(code_challenge=None, code_challenge_method=None, state="s1"))
    assert params["error"] == "invalid_request" and "PKCE" in params["error_description"]
    assert params["state"] == "s1" and params["iss"] == browser.service.core.settings.issuer


async def test_plain_pkce_is_refused(browser: Browser) -> None:
    params = redirect_params(await browser.authorize(code_challenge="a" * 43, code_challenge_method="plain"))
    assert params["error"] == "invalid_request" and "S256" in params["error_description"]


async def test_missing_method_defaults_to_plain_and_is_refused(browser: Browser) -> None:
    params = redirect_params(await browser.authorize(code_challenge_method=None))
    assert params["error"] == "invalid_request"


async def test_wrong_verifier_is_invalid_grant(browser: Browser) -> None:
    code, verifier = await _code(browser)
    response = await exchange(browser, "webapp", code, verifier[:-1] + ("A" if verifier[-1] != "A" else "B"))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    # The code was spent by the failed attempt: the right verifier no longer helps.
    assert (await exchange(browser, "webapp", code, verifier)).status_code == 400


async def test_missing_verifier_is_invalid_grant(browser: Browser) -> None:
    code, _ = await _code(browser)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": WEB_REDIRECT}
    response = await browser.http.post("/oauth2/token", data=data, headers=browser.service.basic("webapp"))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


# --- the code ---------------------------------------------------------------------------------


async def test_reused_code_is_refused_and_revokes_its_tokens(browser: Browser) -> None:
    code, verifier = await _code(browser)
    first = await exchange(browser, "webapp", code, verifier)
    assert first.status_code == 200
    second = await exchange(browser, "webapp", code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    async with grpc.aio.insecure_channel(browser.service.app.grpc_target) as channel:
        check = await oauth_pb2_grpc.OAuthStub(channel).CheckAccess(
            oauth_pb2.CheckAccessRequest(access_token=first.json()["access_token"])
        )
    assert check.status == oauth_pb2.CheckAccessResponse.TOKEN_DISABLED
    refresh = await browser.http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]},
        headers=browser.service.basic("webapp"),
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    denials = browser.service.registry.get_sample_value(
        "native_iam_grant_denials_total", {"grant": "authorization_code", "reason": "code_reused"}
    )
    assert denials == 1


async def test_expired_code_is_refused(browser: Browser) -> None:
    code, verifier = await _code(browser)
    store = browser.service.core.short_lived
    store.clock = lambda: time.time() + 61  # type: ignore[attr-defined]  # the database store's clock
    response = await exchange(browser, "webapp", code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_code_of_another_client_is_refused(browser: Browser) -> None:
    code, verifier = await _code(browser)
    stolen = await exchange(browser, "other", code, verifier)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert (await exchange(browser, "webapp", code, verifier)).status_code == 400  # single use, even then


async def test_redirect_uri_must_match_at_the_token_endpoint(browser: Browser) -> None:
    code, verifier = await _code(browser)
    response = await exchange(browser, "webapp", code, verifier, redirect_uri="https://web.example/cb?tenant=1")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_unknown_code_is_refused(browser: Browser) -> None:
    response = await exchange(browser, "webapp", "x" * 43, "v" * 43)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_client_without_the_grant_cannot_exchange(browser: Browser) -> None:
    code, verifier = await _code(browser)
    response = await exchange(browser, "web", code, verifier)  # "web" has password + refresh only
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


# --- client and redirect URI: an error page, never a redirect -----------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        WEB_REDIRECT + "x",  # one character more
        WEB_REDIRECT[:-1],  # one character less
        "https://web.example/callbacK",  # one character different
        "https://web.example/callback/",
        "https://web.example/callback?next=https://evil.example",
        "https://web.example/callback#frag",
        "https://web.example.evil.example/callback",
        "https://web.example@evil.example/callback",
        "//evil.example/callback",
        "https:%2F%2Fevil.example",
        "HTTPS://web.example/callback",
        "javascript:alert(1)",
    ],
)
async def test_unregistered_redirect_uri_gets_an_error_page(browser: Browser, redirect_uri: str) -> None:
    _error_page(await browser.authorize(redirect_uri=redirect_uri))


async def test_missing_redirect_uri_gets_an_error_page(browser: Browser) -> None:
    _error_page(await browser.authorize(redirect_uri=None))  # type: ignore[arg-type]


async def test_unknown_client_gets_an_error_page(browser: Browser) -> None:
    _error_page(await browser.authorize("nobody"))


async def test_disabled_client_gets_an_error_page(browser: Browser) -> None:
    """A disabled client (issue 13) is refused like an unknown one, before any redirect."""
    await set_client_enabled(browser.service.core, "webapp", False)
    _error_page(await browser.authorize())


async def test_duplicated_parameter_gets_an_error_page(browser: Browser) -> None:
    response = await browser.http.get(f"/oauth2/authorize?client_id=webapp&client_id=other&redirect_uri={WEB_REDIRECT}")
    _error_page(response)


async def test_unsupported_response_type_goes_to_the_redirect(browser: Browser) -> None:
    params = redirect_params(await browser.authorize(response_type="token"))
    assert params["error"] == "unsupported_response_type"


async def test_client_without_the_grant_is_unauthorized_client(browser: Browser) -> None:
    await browser.service.core.clients.set_browser_settings(
        "web", redirect_uris=(WEB_REDIRECT,), post_logout_redirect_uris=(), first_party=None
    )
    params = redirect_params(await browser.authorize("web"))
    assert params["error"] == "unauthorized_client"


# --- scopes -----------------------------------------------------------------------------------


async def test_scope_outside_the_policy_is_invalid_scope(browser: Browser) -> None:
    await browser.authorize(scope="openid admin:all", state="s9")
    params = redirect_params(await browser.login())
    assert params["error"] == "invalid_scope" and params["state"] == "s9" and "code" not in params


async def test_malformed_scope_is_invalid_scope(browser: Browser) -> None:
    params = redirect_params(await browser.authorize(scope='bad"scope'))
    assert params["error"] == "invalid_scope"


# --- forms: CSRF, sessions, credentials ------------------------------------------------------------


@pytest.mark.parametrize("csrf", [None, "", "wrong-token", "x" * 500])
async def test_login_without_the_right_csrf_token_is_refused(browser: Browser, csrf: str | None) -> None:
    page = await browser.authorize()
    fields = hidden_fields(page.text)
    data = {**fields, "username": "alice", "password": "s3cret-pass"}
    if csrf is None:
        del data["csrf_token"]
    else:
        data["csrf_token"] = csrf
    _error_page(await browser.http.post("/oauth2/login", data=data))


async def test_consent_without_the_right_csrf_token_is_refused(browser: Browser) -> None:
    await browser.authorize()
    consent = await browser.login()
    fields = hidden_fields(consent.text)
    fields["csrf_token"] = "forged"
    _error_page(await browser.http.post("/oauth2/consent", data={**fields, "decision": "allow"}))


async def test_another_browser_cannot_continue_the_request(browser: Browser) -> None:
    page = await browser.authorize()
    fields = hidden_fields(page.text)
    async with httpx.AsyncClient(base_url=browser.service.url) as attacker:
        own = await attacker.get(page.request.url.raw_path.decode())  # its own session and CSRF token
        data = {**fields, "csrf_token": hidden_fields(own.text)["csrf_token"], "username": "alice", "password": "x"}
        _error_page(await attacker.post("/oauth2/login", data=data))


async def test_wrong_password_and_unknown_identity_read_the_same(browser: Browser) -> None:
    page = await browser.authorize()
    wrong = await browser.login(password="nope", page=page)
    unknown = await browser.login(username="mallory", password="nope", page=page)
    for response in (wrong, unknown):
        assert response.status_code == 400 and 'role="alert"' in response.text
        assert 'aria-describedby="form-error"' in response.text and 'aria-invalid="true"' in response.text
    assert wrong.text.replace("alice", "mallory") == unknown.text
    assert "Sign in" in wrong.text and "Allow access?" not in wrong.text


async def test_login_form_limits_apply(browser: Browser) -> None:
    page = await browser.authorize()
    fields = hidden_fields(page.text)
    response = await browser.http.post("/oauth2/login", data={**fields, "username": "a", "password": "p" * 20_000})
    assert response.status_code == 413 and "location" not in response.headers


async def test_double_consent_submission_issues_one_code(browser: Browser) -> None:
    await browser.authorize()
    consent = await browser.login()
    first = await browser.consent(page=consent)
    assert "code" in redirect_params(first)
    again = await browser.consent(page=consent)
    assert again.status_code == 400 and "location" not in again.headers


async def test_deny_is_access_denied(browser: Browser) -> None:
    await browser.authorize(state="s7")
    await browser.login()
    params = redirect_params(await browser.consent("deny"))
    assert params == {"error": "access_denied", "error_description": params["error_description"], "state": "s7",
                      "iss": browser.service.core.settings.issuer}  # fmt: skip


async def test_public_client_needs_no_secret_but_pkce(browser: Browser) -> None:
    code, verifier = await _code(browser, "spa-app", SPA_REDIRECT)
    response = await exchange(browser, "spa-app", code, verifier, redirect_uri=SPA_REDIRECT)
    assert response.status_code == 200 and response.json()["refresh_token"]


async def test_login_page_shares_the_password_grant_lockout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Failed logins on the page lock the identity like failed password grants (one counter, one
    path); a locked-out right password reads exactly like a wrong one."""
    from tests.token_service.api.http.conftest import start_oauth_service
    from tests.token_service.authorize.conftest import PASSWORD

    service = await start_oauth_service(f"sqlite:///{tmp_path / 'l.db'}", lockout_free_attempts=2, lockout_base_s=60)
    try:
        await service.register(
            "portal", grant_types=["authorization_code"], redirect_uris=[WEB_REDIRECT], first_party=True
        )
        async with httpx.AsyncClient(base_url=service.url) as client:
            browser = Browser(client, service)
            page = await browser.authorize("portal", scope="openid")
            for _ in range(2):
                page = await browser.login(password="wrong", page=page)
                assert page.status_code == 400
            # The password grant sees the same lockout.
            grant = await client.post(
                "/oauth2/token",
                data={"grant_type": "password", "username": "alice", "password": PASSWORD},
                headers=service.basic("web"),
            )
            assert grant.status_code == 400 and grant.json()["error"] == "invalid_grant"
            locked = await browser.login(password=PASSWORD, page=page)
            assert locked.status_code == 400 and "location" not in locked.headers
            assert "not correct, or the account is locked" in locked.text
        metrics = service.registry.get_sample_value(
            "native_iam_http_oauth_requests_total",
            {"endpoint": "login", "outcome": "invalid_grant", "reason": "credentials_invalid"},
        )
        assert metrics is not None and metrics >= 3
    finally:
        await service.app.stop(0)


async def test_concurrent_redemptions_of_one_code(browser: Browser) -> None:
    from tests.token_service.authorize.test_postgres import concurrent_redemptions

    await concurrent_redemptions(browser)


async def test_redirect_uri_removed_while_signing_in_gets_an_error_page(browser: Browser) -> None:
    page = await browser.authorize("portal")
    await browser.service.core.clients.set_browser_settings(
        "portal", redirect_uris=("https://web.example/new",), post_logout_redirect_uris=(), first_party=None
    )
    _error_page(await browser.login(page=page))


async def test_hostile_authorize_queries_never_500_and_never_redirect_elsewhere(browser: Browser) -> None:
    """300 mutated authorization requests (encodings, control characters, duplicates, huge values):
    each answer is a page or a redirect to a registered URI, never a 5xx."""
    import random
    from urllib.parse import quote

    rng = random.Random(14)
    registered = {"https://web.example/callback", "https://web.example/cb"}
    pieces = [
        "client_id=webapp", "client_id=other", "client_id=%00", "redirect_uri=" + quote(WEB_REDIRECT, safe=""),
        "redirect_uri=https%3A%2F%2Fevil.example", "redirect_uri=" + quote(WEB_REDIRECT + "%2F..%2F", safe=""),
        "response_type=code", "response_type=token", "response_type=", "scope=openid", "scope=%FF%FE",
        "scope=" + "a" * 30000, "state=%0d%0aSet-Cookie:x=1", "state=" + "s" * 2000, "code_challenge=" + "A" * 43,
        "code_challenge=%3Cscript%3E", "code_challenge_method=S256", "code_challenge_method=plain", "prompt=none",
        "nonce=%E2%80%AE", "%ZZ=1", "=", "&&&", "client_id", "redirect_uri=javascript:alert(1)",
    ]  # fmt: skip
    for _ in range(300):
        query = "&".join(rng.choice(pieces) for _ in range(rng.randint(0, 9)))
        response = await browser.http.get(f"/oauth2/authorize?{query}")
        assert response.status_code in {200, 303, 400, 431}, (query, response.status_code)
        if response.status_code == 303:
            assert response.headers["location"].partition("?")[0] in registered, (query, response.headers["location"])


async def test_a_client_scope_policy_bounds_what_it_may_ask_for_a_user(browser: Browser) -> None:
    """A client with its own scope policy may ask a user only for scopes the policy covers
    (openid aside): refused at the authorize request, before any login."""
    await browser.service.register(
        "narrow", grant_types=["authorization_code"], redirect_uris=[WEB_REDIRECT], scopes=["orders:read"]
    )
    params = redirect_params(await browser.authorize(client_id="narrow", scope="openid orders:read admin:all"))
    assert params["error"] == "invalid_scope" and "code" not in params
    assert "admin:all" in params["error_description"]
    page = await browser.authorize(client_id="narrow", scope="openid orders:read")
    assert page.status_code == 200 and "password" in page.text  # the login page: within its policy
