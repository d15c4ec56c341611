"""The authorization code flow over the running token service: authorize → login → consent → code → tokens."""

from __future__ import annotations

import time

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


async def _signed_in_code(browser: Browser, client_id: str = "webapp", **params: str) -> httpx.Response:
    response = await browser.authorize(client_id, **params)
    if "Sign in" in response.text:
        response = await browser.login()
    return response


async def test_id_token_has_nonce_auth_time_and_at_hash(browser: Browser) -> None:
    import jwt

    from token_service.id_tokens import at_hash

    before = int(time.time())
    await browser.authorize(nonce="n-42")
    await browser.login()
    params = redirect_params(await browser.consent())
    verifier = browser.verifiers[params["state"]].verifier
    body = (await exchange(browser, "webapp", params["code"], verifier)).json()
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims["nonce"] == "n-42" and claims["aud"] == "webapp" and claims["sub"] == "alice"
    assert before - 1 <= claims["auth_time"] <= int(time.time()) + 1
    alg = jwt.get_unverified_header(body["id_token"])["alg"]
    assert claims["at_hash"] == at_hash(body["access_token"], alg)


async def test_consent_is_remembered_and_a_new_scope_asks_again(browser: Browser) -> None:
    await browser.authorize()
    await browser.login()
    redirect_params(await browser.consent())
    again = await browser.authorize()  # same scopes, same session: straight to the code
    assert "code" in redirect_params(again)
    fewer = await browser.authorize(scope="orders:read")
    assert "code" in redirect_params(fewer)
    wider = await browser.authorize(scope="openid orders:read orders:write")
    assert wider.status_code == 200 and "Allow access?" in wider.text and "orders:write" in wider.text
    forced = await browser.authorize(prompt="consent")
    assert "Allow access?" in forced.text


async def test_first_party_client_skips_consent(browser: Browser) -> None:
    await browser.authorize("portal")
    assert "code" in redirect_params(await browser.login())


async def test_prompt_login_asks_again(browser: Browser) -> None:
    await _signed_in_code(browser, "portal")
    page = await browser.authorize("portal", prompt="login")
    assert "Sign in" in page.text
    assert "code" in redirect_params(await browser.login())


async def test_empty_scope_means_the_policy_s_concrete_scopes(browser: Browser) -> None:
    await browser.authorize("portal", scope=None)  # type: ignore[arg-type]
    params = redirect_params(await browser.login())
    body = (await exchange(browser, "portal", params["code"], browser.verifiers[params["state"]].verifier)).json()
    assert body["scope"] == "openid orders:read orders:write"


async def test_namespaced_identity_signs_in_with_the_namespace_field(browser: Browser) -> None:
    await browser.authorize("portal", scope="orders:read")
    wrong = await browser.login(username="bob")  # bob lives in namespace "shop"
    assert wrong.status_code == 400
    params = redirect_params(await browser.login(username="bob", namespace="shop", page=wrong))
    body = (await exchange(browser, "portal", params["code"], browser.verifiers[params["state"]].verifier)).json()
    import jwt

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["namespace"], body["scope"]) == ("bob", "shop", "orders:read")


async def test_registered_query_is_kept_in_the_redirect(browser: Browser) -> None:
    await _signed_in_code(browser, "webapp", redirect_uri="https://web.example/cb?tenant=1")
    response = await browser.consent()
    location = response.headers["location"]
    assert location.startswith("https://web.example/cb?tenant=1&code=")


async def test_pages_carry_the_security_headers_and_a_safe_cookie(browser: Browser) -> None:
    page = await browser.authorize()
    csp = page.headers["content-security-policy"]
    for directive in ("default-src 'none'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"):
        assert directive in csp
    assert "script-src" not in csp and "unsafe-inline" not in csp
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie and "path=/" in cookie
    assert "<script" not in page.text and "style=" not in page.text
    # X-Forwarded-Proto from a peer that is not a trusted proxy changes nothing.
    async with httpx.AsyncClient(base_url=browser.service.url) as fresh:
        spoofed = await fresh.get(page.request.url.raw_path.decode(), headers={"X-Forwarded-Proto": "https"})
    assert spoofed.headers["set-cookie"].startswith("native-iam-session=")
    assert "secure" not in spoofed.headers["set-cookie"].lower()
    css = await browser.http.get("/oauth2/static/login.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_cookie_is_secure_behind_a_trusted_https_proxy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import ipaddress

    from tests.token_service.api.http.conftest import start_oauth_service

    proxies = (ipaddress.ip_network("127.0.0.1/32"),)
    service = await start_oauth_service(f"sqlite:///{tmp_path / 'p.db'}", trusted_proxies=proxies)
    try:
        await service.register("portal", grant_types=["authorization_code"], redirect_uris=[WEB_REDIRECT])
        async with httpx.AsyncClient(base_url=service.url) as client:
            browser = Browser(client, service)
            page = await browser.authorize("portal", scope="openid")
            assert "secure" not in page.headers["set-cookie"].lower()  # plain http from the proxy
            page = await client.get(page.request.url.raw_path.decode(), headers={"X-Forwarded-Proto": "https"})
            cookie = page.headers["set-cookie"]
            assert cookie.startswith("__Host-native-iam-session=") and "secure" in cookie.lower()
    finally:
        await service.app.stop(0)


async def test_user_input_is_escaped(browser: Browser) -> None:
    await browser.authorize()
    page = await browser.login(username='"><script>alert(1)</script>', password="x")
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text


async def test_discovery_describes_the_flow(browser: Browser) -> None:
    doc = (await browser.http.get("/.well-known/openid-configuration")).json()
    base = browser.service.core.settings.issuer.rstrip("/")
    assert doc["authorization_endpoint"] == f"{base}/oauth2/authorize"
    assert doc["end_session_endpoint"] == f"{base}/oauth2/logout"
    assert doc["response_types_supported"] == ["code"] and doc["code_challenge_methods_supported"] == ["S256"]
    assert (
        "authorization_code" in doc["grant_types_supported"] and doc["authorization_response_iss_parameter_supported"]
    )
    assert {"nonce", "auth_time", "at_hash"} <= set(doc["claims_supported"])


async def test_prompt_none_answers_without_a_page(browser: Browser) -> None:
    """OpenID Connect silent authentication: login_required, consent_required, or straight to the code."""
    params = redirect_params(await browser.authorize(prompt="none", state="p1"))
    assert params["error"] == "login_required" and params["state"] == "p1"
    await browser.authorize("portal")
    await browser.login()  # signed in now (portal is first-party)
    params = redirect_params(await browser.authorize(prompt="none"))  # webapp: no consent yet
    assert params["error"] == "consent_required"
    assert "code" in redirect_params(await browser.authorize("portal", prompt="none"))


async def test_code_grant_tokens_work_on_the_grpc_transport(browser: Browser) -> None:
    """The other transport: CheckAccess accepts the access token; a public client's refresh token
    from the code grant refreshes over gRPC RefreshToken (with that client's rotation)."""
    import grpc

    from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
    from tests.token_service.authorize.conftest import SPA_REDIRECT

    await browser.authorize("spa-app", SPA_REDIRECT)
    await browser.login()
    params = redirect_params(await browser.consent())
    verifier = browser.verifiers[params["state"]].verifier
    body = (await exchange(browser, "spa-app", params["code"], verifier, redirect_uri=SPA_REDIRECT)).json()
    async with grpc.aio.insecure_channel(browser.service.app.grpc_target) as channel:
        stub = oauth_pb2_grpc.OAuthStub(channel)
        check = await stub.CheckAccess(
            oauth_pb2.CheckAccessRequest(access_token=body["access_token"], scopes=["orders:read"])
        )
        assert check.status == oauth_pb2.CheckAccessResponse.OK
        refreshed = await stub.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=body["refresh_token"]))
        assert refreshed.status == oauth_pb2.RefreshTokenResponse.OK
        assert refreshed.refresh_token and refreshed.refresh_token != body["refresh_token"]  # rotated
