"""The whole flow in a real browser: headless Chromium (selenium + chromedriver) signs in on the login
page, consents, lands on the application's redirect with a code; Authlib exchanges it (PKCE); the
token passes a real Envoy + sidecar; the browser logs out.

Screenshots of the login and consent pages go to the test's temporary directory, and into
docs/images/ when NATIVE_IAM_UPDATE_SCREENSHOTS=1 (how the images in docs/login.md are made).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from tests.conftest import require_tool
from tests.sidecar import _stack
from tests.token_service.api.http.conftest import PASSWORD, OAuthService

pytestmark = [pytest.mark.browser, pytest.mark.envoy]

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _require_chromium() -> None:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("chromium and chromedriver are not installed (Debian: chromium chromium-driver; ./dev test)")


class _Callback(BaseHTTPRequestHandler):
    """The application's redirect endpoint: remembers every query it receives."""

    received: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        type(self).received.append({"path": urlsplit(self.path).path, **query})
        body = b"<!doctype html><title>Demo app</title><h1>Back in the application</h1>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _application() -> Iterator[tuple[int, list[dict[str, str]]]]:
    handler = type("Callback", (_Callback,), {"received": []})
    with _stack.echo_upstream(handler) as port:
        yield port, handler.received


@contextlib.contextmanager
def _chromium() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=900,900", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _after_click(driver: object, button: str, until: Callable[[Any], bool]) -> None:
    """Click ``button`` (a CSS selector) and wait until ``until(driver)``: a click does not wait for
    the navigation it starts."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.CSS_SELECTOR, button).click()  # type: ignore[attr-defined]
    WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,)).until(until)


def _heading(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "h1").text)


def _screenshot(driver: object, tmp: Path, name: str) -> None:
    driver.save_screenshot(str(tmp / name))  # type: ignore[attr-defined]
    if os.environ.get("NATIVE_IAM_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(tmp / name, ROOT / "docs" / "images" / name)


async def test_real_browser_sign_in_consent_envoy_and_logout(oauth_service: OAuthService, tmp_path: Path) -> None:
    _require_chromium()
    envoy_bin = require_tool("envoy")
    from selenium.webdriver.common.by import By

    core = oauth_service.core
    with _application() as (app_port, received):
        callback = f"http://127.0.0.1:{app_port}/callback"
        signed_out = f"http://127.0.0.1:{app_port}/signed-out"
        await oauth_service.register(
            "demo-web",
            name="Order Desk",
            grant_types=["authorization_code", "refresh_token"],
            redirect_uris=[callback],
            post_logout_redirect_uris=[signed_out],
        )
        verifier = secrets.token_urlsafe(48)
        async with AsyncOAuth2Client(
            "demo-web",
            oauth_service.secrets["demo-web"],
            scope="openid orders:read",
            redirect_uri=callback,
            code_challenge_method="S256",
        ) as client:
            url, state = client.create_authorization_url(
                f"{oauth_service.url}/oauth2/authorize", code_verifier=verifier, nonce="browser-nonce"
            )

            def sign_in() -> dict[str, str]:
                with _chromium() as driver:
                    driver.get(url)  # type: ignore[attr-defined]
                    assert "Order Desk" in driver.find_element(By.TAG_NAME, "main").text  # type: ignore[attr-defined]
                    _screenshot(driver, tmp_path, "login.png")
                    # Labels name the fields (what a screen reader announces).
                    driver.find_element(By.CSS_SELECTOR, "label[for=username]")  # type: ignore[attr-defined]
                    driver.find_element(By.ID, "username").send_keys("alice")  # type: ignore[attr-defined]
                    driver.find_element(By.ID, "password").send_keys(PASSWORD)  # type: ignore[attr-defined]
                    _after_click(driver, "button[type=submit]", lambda d: _heading(d) == "Allow access?")
                    _screenshot(driver, tmp_path, "consent.png")
                    _after_click(driver, "button[value=allow]", lambda d: _heading(d) == "Back in the application")
                    landed = driver.current_url  # type: ignore[attr-defined]
                    return {"landed": landed}

            result = await asyncio.to_thread(sign_in)
            assert result["landed"].startswith(callback + "?code=")
            callbacks = [r for r in received if r["path"] == "/callback"]  # not /favicon.ico
            assert callbacks[-1]["state"] == state and callbacks[-1]["iss"] == core.settings.issuer
            token = await client.fetch_token(
                f"{oauth_service.url}/oauth2/token",
                authorization_response=result["landed"],
                code_verifier=verifier,
                state=state,
            )
        assert token["scope"] == "openid orders:read" and token["id_token"]

        # The token through a real Envoy and sidecar.
        async with _stack.in_process_sidecar(oauth_service.app.grpc_target, core.settings.issuer) as sidecar:
            with _stack.echo_upstream() as upstream:
                listen = _stack.free_port()
                config = _stack.envoy_config(tmp_path, listen=listen, authz=sidecar.authz_port, upstream=upstream)
                with _stack.envoy(envoy_bin, config, listen) as envoy_url:
                    async with httpx.AsyncClient(base_url=envoy_url, timeout=10) as http:
                        bearer = {"authorization": f"Bearer {token['access_token']}"}
                        deadline = time.monotonic() + 30
                        # Until the sidecar has its first feed snapshot it answers 503 (fail closed).
                        while (allowed := await http.get("/orders/7", headers=bearer)).status_code == 503:
                            assert time.monotonic() < deadline, allowed.text
                            await asyncio.sleep(0.1)
                        denied = await http.post("/orders", headers=bearer)
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["headers"]["x-native-iam-identity"] == "alice"
        assert denied.status_code == 403

        def log_out() -> tuple[str, str]:
            with _chromium() as driver:
                # A fresh browser signs in again: no consent page this time (it is remembered).
                driver.get(url.replace(f"state={state}", "state=again"))  # type: ignore[attr-defined]
                driver.find_element(By.ID, "username").send_keys("alice")  # type: ignore[attr-defined]
                driver.find_element(By.ID, "password").send_keys(PASSWORD)  # type: ignore[attr-defined]
                _after_click(driver, "button[type=submit]", lambda d: _heading(d) == "Back in the application")
                back = driver.current_url  # type: ignore[attr-defined]
                logout = f"{oauth_service.url}/oauth2/logout?id_token_hint={token['id_token']}&client_id=demo-web"
                driver.get(f"{logout}&post_logout_redirect_uri={signed_out}&state=bye")  # type: ignore[attr-defined]
                after_logout = driver.current_url  # type: ignore[attr-defined]
                driver.get(url)  # type: ignore[attr-defined]
                again = _heading(driver)
                return back, f"{after_logout}|{again}"

        back, outcome = await asyncio.to_thread(log_out)
        after_logout, heading_after = outcome.split("|")
        assert back.startswith(callback + "?code=")  # consent remembered: straight back
        assert after_logout == f"{signed_out}?state=bye" and heading_after == "Sign in"
