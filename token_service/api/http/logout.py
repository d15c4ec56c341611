"""RP-initiated logout: ``GET|POST /oauth2/logout`` (OpenID Connect RP-Initiated Logout 1.0, the
discovery document's ``end_session_endpoint``).

* ``id_token_hint``, when given, must be an ID token we signed (expired is fine, §2); its ``aud``
  must contain ``client_id`` when both are given (seed 003: "when doing the logout, there's
  validation on the ID token audience against client_id").
* ``post_logout_redirect_uri`` is followed only if it is exactly one of the registered
  post-logout URIs of that client (named by ``client_id`` or by the hint's audience); anything
  else is an error page, never a redirect. ``state`` is passed back unchanged.
* Without a valid hint the user confirms on a page (its form carries the session's CSRF token),
  so a link on another site cannot sign anyone out. With one, the session ends at once, but only
  if it is the hint's subject's (another user's ID token ends nobody's session).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from native_iam import jws
from token_service.api.http import pages
from token_service.api.http.forms import Form, parse_body, read_form
from token_service.api.http.pages import Html, render
from token_service.authorize.sessions import BrowserSession
from token_service.errors import CsrfTokenInvalid, TokenServiceError, UntrustedRedirect
from token_service.id_tokens import read_id_token_hint
from token_service.redirect_uris import is_registered

if TYPE_CHECKING:
    from token_service.api.http.authorize import BrowserEndpoints

__all__ = ["logout"]

_PASSED_ON = ("client_id", "post_logout_redirect_uri", "state")


async def logout(endpoints: BrowserEndpoints, request: Request) -> Response:
    secure = endpoints.secure(request)
    try:
        params = await read_form(request) if request.method == "POST" else parse_body(request.scope["query_string"])
        hint = _hint(endpoints, params)
        target = await _target(endpoints, params, hint)
    except TokenServiceError as exc:
        return endpoints.error_page(request, "logout", exc)
    session = await endpoints.sessions.load(pages.read_session_cookie(request, secure))
    confirmed = hint is not None or (request.method == "POST" and params.get("confirm") == "yes")
    if session is not None and not confirmed:
        return _confirm_page(session, params, target)
    if session is not None and hint is None and not session.csrf_matches(params.get("csrf_token")):
        return endpoints.error_page(request, "logout", CsrfTokenInvalid())
    ended = session is None or hint is None or (hint.sub, hint.namespace) == (session.identity, session.namespace)
    if session is not None and ended:
        await endpoints.sessions.end(session)
    request.app.state.requests_total.labels("logout", "ok", "").inc()
    if target is not None:
        response = pages.redirect(pages.with_query(target, {"state": params.get("state")}))
    else:
        response = pages.message("Signed out", "You are signed out.", status=200)
    if ended:
        pages.clear_session_cookie(response, secure=secure)
    return response


def _hint(endpoints: BrowserEndpoints, params: Form) -> jws.IdTokenHint | None:
    token = params.get("id_token_hint")
    if token is None:
        return None
    core = endpoints.core
    hint = read_id_token_hint(core.keys, core.settings.issuer, token, core.clock())
    client_id = params.get("client_id")
    if client_id is not None and client_id not in hint.audience:
        raise UntrustedRedirect("the id_token_hint was issued to another application")
    return hint


async def _target(endpoints: BrowserEndpoints, params: Form, hint: jws.IdTokenHint | None) -> str | None:
    """The registered post-logout URI to go to, or None (stay on our "signed out" page)."""
    uri = params.get("post_logout_redirect_uri")
    if uri is None:
        return None
    client_id = params.get("client_id") or (hint.audience[0] if hint is not None and len(hint.audience) == 1 else None)
    if client_id is None:
        raise UntrustedRedirect("post_logout_redirect_uri needs client_id or id_token_hint")
    client = await endpoints.core.clients.get_client(client_id)
    if client is None:
        raise UntrustedRedirect("unknown application (client_id)")
    if not is_registered(uri, client.post_logout_redirect_uris):
        raise UntrustedRedirect("the post_logout_redirect_uri is not registered for this application")
    return uri


def _confirm_page(session: BrowserSession, params: Form, target: str | None) -> Response:
    hidden = Html(
        "\n".join(
            render("hidden.html", name=name, value=value)
            for name in _PASSED_ON
            if (value := params.get(name)) is not None
        )
    )
    form = render("logout.html", csrf_token=session.csrf, hidden=hidden)
    account = f"{session.namespace}/{session.identity}" if session.namespace else session.identity
    text = f"You are signed in as {account}." if session.signed_in else "Sign out of this browser?"
    return pages.message("Sign out?", text, status=200, form=form, redirect_uri=target)
