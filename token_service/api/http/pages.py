"""Server-rendered HTML for the browser pages: templates, escaping, security headers and the cookie.

Templates are plain files in ``templates/`` filled with :class:`string.Template`: every value is
HTML-escaped (:func:`html.escape`, quotes included) unless it is :class:`Html`, a fragment this
module built from escaped parts. No template engine: five small pages do not earn one.

Every page carries the same headers: a Content-Security-Policy that allows only our stylesheet
(``static/login.css``; no script at all, no inline style) and form posts to ourselves (plus the
client's redirect origin, which Chromium checks on the redirect after a form post);
``frame-ancestors 'none'`` and X-Frame-Options (no clickjacking of the consent button);
``Referrer-Policy: no-referrer`` (codes and state never leak through Referer); ``nosniff``; and
``Cache-Control: no-store``.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable, Mapping
from importlib import resources
from string import Template
from typing import Final
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

__all__ = [
    "EMPTY",
    "Html",
    "clear_session_cookie",
    "message",
    "page",
    "read_session_cookie",
    "redirect",
    "render",
    "scope_items",
    "security_headers",
    "session_cookie_name",
    "set_session_cookie",
    "stylesheet",
    "with_query",
]

SERVICE_NAME: Final = "Native IAM"
_COOKIE: Final = "native-iam-session"
#: Over HTTPS the cookie gets the __Host- prefix: the browser then insists on Secure, Path=/ and
#: no Domain, so no sibling host can plant or shadow it.
_HOST_COOKIE: Final = "__Host-native-iam-session"


class Html(str):
    """Markup built by this module from escaped parts; inserted into templates as is."""

    __slots__ = ()


@functools.cache
def _template(name: str) -> Template:
    return Template(resources.files(__package__).joinpath("templates", name).read_text("utf-8"))


@functools.cache
def stylesheet() -> bytes:
    return resources.files(__package__).joinpath("static", "login.css").read_bytes()


def render(template: str, /, **values: str) -> Html:
    """Template ``template`` with ``values`` escaped (except :class:`Html` values)."""
    escaped = {k: v if isinstance(v, Html) else html.escape(v, quote=True) for k, v in values.items()}
    return Html(_template(template).substitute(escaped))


def _form_targets(redirect_uri: str | None) -> str:
    if not redirect_uri:
        return ""
    parts = urlsplit(redirect_uri)
    if parts.scheme in {"http", "https"}:
        return f" {parts.scheme}://{parts.netloc}"
    return f" {parts.scheme}:"


def security_headers(redirect_uri: str | None = None) -> dict[str, str]:
    """The headers of every page (see the module docstring); ``redirect_uri``: where forms may end up."""
    csp = (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'; "
        f"form-action 'self'{_form_targets(redirect_uri)}"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    }


def page(title: str, content: Html, *, status: int = 200, redirect_uri: str | None = None) -> Response:
    """A complete HTML page."""
    body = render("layout.html", title=title, service=SERVICE_NAME, content=content)
    return HTMLResponse(body, status_code=status, headers=security_headers(redirect_uri))


EMPTY: Final = Html("")


def message(
    heading: str, text: str, *, status: int, role: str = "status", form: Html = EMPTY, redirect_uri: str | None = None
) -> Response:
    """A page that says one thing (an error, "signed out"), maybe with a form."""
    content = render("message.html", heading=heading, message=text, role=role, form=form)
    return page(heading, content, status=status, redirect_uri=redirect_uri)


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """``uri`` with ``params`` added to its query (RFC 6749 §3.1.2: a registered query is kept)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if not query:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def redirect(location: str) -> Response:
    """303 See Other to ``location`` (the browser follows with GET, also after a form post)."""
    response = RedirectResponse(location, status_code=303)
    response.headers.update({"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "Pragma": "no-cache"})
    return response


# --- the session cookie ---------------------------------------------------------------------


def session_cookie_name(secure: bool) -> str:
    return _HOST_COOKIE if secure else _COOKIE


def set_session_cookie(response: Response, value: str, *, secure: bool, max_age: int) -> None:
    """HttpOnly (no script reads it), SameSite=Lax (not sent on cross-site posts), Secure over HTTPS."""
    response.set_cookie(
        session_cookie_name(secure),
        value,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(session_cookie_name(secure), path="/", secure=secure, httponly=True, samesite="lax")


def read_session_cookie(request: Request, secure: bool) -> str | None:
    return request.cookies.get(session_cookie_name(secure))


# --- readable scopes --------------------------------------------------------------------------

_KNOWN: Final[Mapping[str, str]] = {
    "openid": "Know who you are (your name and namespace)",
    "offline_access": "Stay signed in when you are away",
    "profile": "See your profile",
}


def scope_label(scope: str) -> str:
    """A readable sentence for a scope: known ones by name, ``resource:action`` as "Action resource"."""
    if scope in _KNOWN:
        return _KNOWN[scope]
    resource, sep, action = scope.partition(":")
    if sep and resource and action and action != "*":
        return f"{action.replace('_', ' ').replace('-', ' ').capitalize()} {resource.replace('_', ' ')}"
    if sep and action == "*":
        return f"Full access to {resource.replace('_', ' ')}"
    return scope


def scope_items(scopes: Iterable[str]) -> Html:
    items = (
        f'<li><span class="scope-label">{html.escape(scope_label(s))}</span>'
        f'<span class="scope-name">{html.escape(s)}</span></li>'
        for s in scopes
    )
    return Html("\n".join(items))
