"""The demo's browser sign-in (issue 14): a public client ``demo-web`` whose redirect URI is the
sample upstream (it echoes the ``code`` back as JSON), the URL a person opens to try the
authorization code flow, and ``--check``'s scripted run of that flow (sign-in page → consent →
code → tokens → Envoy).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from http.cookiejar import CookieJar
from typing import Any

__all__ = ["DEMO_WEB_CLIENT", "authorize_url", "check", "commands", "ensure_web_client", "redirect_uri"]

DEMO_WEB_CLIENT = "demo-web"
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def redirect_uri(ports: Mapping[str, int]) -> str:
    return f"http://127.0.0.1:{ports['upstream']}/callback"


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorize_url(ports: Mapping[str, int], verifier: str, state: str = "demo") -> str:
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": DEMO_WEB_CLIENT,
            "redirect_uri": redirect_uri(ports),
            "scope": "orders:read",
            "state": state,
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    return f"http://127.0.0.1:{ports['token_http']}/oauth2/authorize?{query}"


async def ensure_web_client(core: Any, server_key: bytes, ports: Mapping[str, int]) -> None:
    """Register ``demo-web`` (public, PKCE, asks for consent), or point it at this run's ports."""
    from token_service.clients import new_client

    callback = redirect_uri(ports)
    signed_out = f"http://127.0.0.1:{ports['upstream']}/signed-out"
    if await core.clients.get_client(DEMO_WEB_CLIENT) is None:
        client, _ = new_client(
            DEMO_WEB_CLIENT,
            auth_method="none",
            server_key=server_key,
            name="Demo web app",
            grant_types=["authorization_code", "refresh_token"],
            redirect_uris=[callback],
            post_logout_redirect_uris=[signed_out],
        )
        await core.clients.create(client)
    else:
        await core.clients.set_browser_settings(
            DEMO_WEB_CLIENT, redirect_uris=(callback,), post_logout_redirect_uris=(signed_out,), first_party=None
        )


def commands(ports: Mapping[str, int], demo_identity: str, demo_password: str, verifier: str) -> str:
    http = f"http://127.0.0.1:{ports['token_http']}"
    return f"""
# 6. Sign in with a browser (authorization code + PKCE, public client {DEMO_WEB_CLIENT}): open
#    {authorize_url(ports, verifier)}
#    sign in as {demo_identity} / {demo_password}, allow; the sample app then shows the code in "path".
#    Exchange it within 60 s:
curl -s {http}/oauth2/token -d grant_type=authorization_code -d client_id={DEMO_WEB_CLIENT} \\
  -d redirect_uri={redirect_uri(ports)} -d code_verifier={verifier} -d code=PASTE_THE_CODE
"""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 303 to the client is what we want to read


def check(
    ports: Mapping[str, int],
    demo_identity: str,
    demo_password: str,
    verifier: str,
    expect: Callable[[str, int, int, str], None],
) -> str:
    """Run the browser flow with a cookie jar; report each step through ``expect``; the access token."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()), _NoRedirect())
    http = f"http://127.0.0.1:{ports['token_http']}"

    def call(url: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with opener.open(urllib.request.Request(url, data=data), timeout=10) as response:  # noqa: S310 - loopback
                return response.status, response.read().decode(), response.headers.get("location", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace"), exc.headers.get("location", "")

    def fields(page: str) -> dict[str, str]:
        return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}

    status, page, _ = call(authorize_url(ports, verifier, "check"))
    expect("authorize: sign-in page", status, 200, "")
    login = {**fields(page), "username": demo_identity, "password": demo_password, "namespace": ""}
    status, page, location = call(f"{http}/oauth2/login", login)
    if status == 200 and "Allow access?" in page:  # consent (remembered after the first run)
        status, page, location = call(f"{http}/oauth2/consent", {**fields(page), "decision": "allow"})
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    expect("sign in and consent: redirect with a code", status, 303, f"state={query.get('state', [''])[0]!r}")
    exchange = {
        "grant_type": "authorization_code",
        "client_id": DEMO_WEB_CLIENT,
        "redirect_uri": redirect_uri(ports),
        "code_verifier": verifier,
        "code": query.get("code", [""])[0],
    }
    status, body, _ = call(f"{http}/oauth2/token", exchange)
    tokens = json.loads(body) if body.startswith("{") else {}
    expect("code exchange (PKCE)", status, 200, f"scope={tokens.get('scope')!r}")
    return str(tokens.get("access_token", ""))
