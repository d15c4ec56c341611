"""The browser endpoints of the authorization code flow: ``GET /oauth2/authorize`` and the login and
consent forms it leads to (RFC 6749 §4.1, RFC 7636, OpenID Connect Core §3.1).

A request reads top to bottom: check the client and its redirect URI (else an error page) → check
the rest (else an error redirect carrying ``state`` and ``iss``) → hold the request for this
browser's session → sign in (the password grant's own check: lockout, non-enumerating message)
→ consent unless the client is first-party or the identity already approved these scopes → a
code, by a 303 redirect. Every refusal is a leaf of :mod:`token_service.errors`, counted in
``native_iam_http_requests_total{endpoint, error, reason}`` and logged with its reason.
RP-initiated logout is :mod:`token_service.api.http.logout`.
"""

from __future__ import annotations

import html
import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from native_iam.limits import MAX_STATE_BYTES
from token_service import consents
from token_service.api.http import logout as rp_logout
from token_service.api.http import pages
from token_service.api.http.forms import Form, parse_body, read_form
from token_service.api.http.pages import EMPTY, Html, render
from token_service.authorize.codes import issue_code
from token_service.authorize.request import AuthorizationRequest, trusted_redirect, validate
from token_service.authorize.sessions import BrowserSession, Sessions
from token_service.clients import GrantType, OAuthClient
from token_service.core import Core
from token_service.errors import (
    AccessDenied,
    ConsentRequired,
    CredentialsInvalid,
    CsrfTokenInvalid,
    GrantError,
    IdentityNotActive,
    InvalidRequest,
    LoginRequired,
    ScopeNotGranted,
    TokenServiceError,
    UntrustedRedirect,
    deny_reason,
)
from token_service.forwarded import client_address, is_https
from token_service.grants.password import verify_password
from token_service.redirect_uris import is_registered
from token_service.requested_scopes import granted_scopes
from token_service.settings import IPNetwork
from token_service.store import identities

__all__ = ["BrowserEndpoints"]

log = logging.getLogger(__name__)

_WRONG_CREDENTIALS = "The name or password is not correct, or the account is locked for a while. Try again."
_DISABLED = "This account is disabled. Ask your administrator."
_MISSING = "Enter your name and password."


class BrowserEndpoints:
    """The handlers of the browser pages over one :class:`Core` (see the module docstring)."""

    def __init__(self, core: Core, *, issuer: str, trusted_proxies: tuple[IPNetwork, ...] = ()) -> None:
        self.core = core
        self.issuer = issuer
        self.trusted_proxies = trusted_proxies
        self.sessions = Sessions(core)

    # --- shared pieces ---------------------------------------------------------------------

    def secure(self, request: Request) -> bool:
        peer = request.client.host if request.client else None
        return is_https(request.url.scheme, peer, request.headers.getlist("x-forwarded-proto"), self.trusted_proxies)

    def address(self, request: Request) -> str | None:
        peer = request.client.host if request.client else None
        return client_address(peer, request.headers.getlist("x-forwarded-for"), self.trusted_proxies)

    def denied(self, request: Request, endpoint: str, exc: TokenServiceError, client_id: str = "") -> None:
        """Count and log one refusal (never a secret: messages are safe by construction)."""
        reason = deny_reason(exc)
        request.app.state.requests_total.labels(endpoint, exc.error, reason).inc()
        detail = exc.reason if isinstance(exc, GrantError) else reason
        log.info(
            "browser request denied",
            extra={"endpoint": endpoint, "error": exc.error, "reason": detail, "client_id": client_id},
        )

    def error_page(self, request: Request, endpoint: str, exc: TokenServiceError, client_id: str = "") -> Response:
        self.denied(request, endpoint, exc, client_id)
        return pages.message("Cannot continue", exc.message, status=exc.http_status, role="alert")

    def error_redirect(
        self,
        request: Request,
        endpoint: str,
        exc: TokenServiceError,
        redirect_uri: str,
        state: str | None,
        client_id: str,
    ) -> Response:
        """RFC 6749 §4.1.2.1: the error goes back to the (known good) redirect URI, with ``state`` and ``iss``."""
        self.denied(request, endpoint, exc, client_id)
        params = {"error": exc.error, "error_description": exc.message[:200], "state": state, "iss": self.issuer}
        return pages.redirect(pages.with_query(redirect_uri, params))

    async def session_for(self, request: Request) -> tuple[BrowserSession, str | None]:
        """The browser's session, or a new anonymous one and its cookie value."""
        session = await self.sessions.load(pages.read_session_cookie(request, self.secure(request)))
        if session is not None:
            return session, None
        cookie, session = await self.sessions.start()
        return session, cookie

    def with_cookie(
        self, request: Request, response: Response, cookie: str | None, session: BrowserSession
    ) -> Response:
        if cookie is not None:
            max_age = max(1, int(session.expires_at - self.core.clock()))
            pages.set_session_cookie(response, cookie, secure=self.secure(request), max_age=max_age)
        return response

    async def _form(self, request: Request) -> tuple[Form, BrowserSession, str, AuthorizationRequest]:
        """A login or consent post: its form, session (CSRF checked), request id and pending request."""
        form = await read_form(request)
        session = await self.sessions.load(pages.read_session_cookie(request, self.secure(request)))
        if session is None or not session.csrf_matches(form.get("csrf_token")):
            raise CsrfTokenInvalid()
        request_id = form.get("request") or ""
        pending = await self.sessions.pending(request_id, session)
        if pending is None:
            raise CsrfTokenInvalid("this sign-in request has expired; go back to the application and start again")
        return form, session, request_id, pending

    # --- GET /oauth2/authorize ---------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        try:
            params = parse_body(request.scope.get("query_string", b""))
            client, redirect_uri = await trusted_redirect(params.params, self.core.clients)
        except TokenServiceError as exc:
            return self.error_page(request, "authorize", exc)
        state = params.get("state")
        try:
            pending = validate(params.params, client, redirect_uri)
        except TokenServiceError as exc:
            kept = state if state is not None and len(state.encode()) <= MAX_STATE_BYTES else None
            return self.error_redirect(request, "authorize", exc, redirect_uri, kept, client.client_id)
        session, cookie = await self.session_for(request)
        request_id = await self.sessions.hold(session, pending)
        response = await self.proceed(request, session, request_id, pending, client)
        return self.with_cookie(request, response, cookie, session)

    async def proceed(
        self,
        request: Request,
        session: BrowserSession,
        request_id: str,
        pending: AuthorizationRequest,
        client: OAuthClient,
        *,
        just_signed_in: bool = False,
    ) -> Response:
        """The next step for a held request: sign in, consent, or the code."""
        silent = pending.prompt == "none"  # OpenID Connect: answer without showing any page
        if not session.signed_in or (pending.prompt == "login" and not just_signed_in):
            if silent:
                await self.sessions.finish(request_id)
                exc: TokenServiceError = LoginRequired()
                return self.error_redirect(
                    request, "authorize", exc, pending.redirect_uri, pending.state, client.client_id
                )
            return self.login_page(session, request_id, client, pending)
        try:
            scopes = await self.approved_scopes(session, pending)
        except ScopeNotGranted as exc:
            await self.sessions.finish(request_id)
            return self.error_redirect(request, "authorize", exc, pending.redirect_uri, pending.state, client.client_id)
        if scopes is None and silent:
            await self.sessions.finish(request_id)
            return self.error_redirect(
                request, "authorize", LoginRequired(), pending.redirect_uri, pending.state, client.client_id
            )
        if scopes is None:  # the identity was disabled or deleted since it signed in
            await self.sessions.end(session)
            cookie, anonymous = await self.sessions.start()
            await self.sessions.move(request_id, pending, anonymous)
            page = self.login_page(anonymous, request_id, client, pending)
            return self.with_cookie(request, page, cookie, anonymous)
        if not client.first_party and (
            pending.prompt == "consent"
            or not await consents.is_covered(
                self.core, session.identity_id or 0, session.identity_uid, client.client_id, scopes
            )
        ):
            if silent:
                await self.sessions.finish(request_id)
                return self.error_redirect(
                    request, "authorize", ConsentRequired(), pending.redirect_uri, pending.state, client.client_id
                )
            return self.consent_page(session, request_id, client, pending, scopes)
        return await self.issue(request, session, request_id, pending, client, scopes)

    async def approved_scopes(self, session: BrowserSession, pending: AuthorizationRequest) -> tuple[str, ...] | None:
        """The scopes the code will carry: the requested ones (else the policy's concrete scopes),
        each covered by the identity's policy (ScopeNotGranted otherwise); None if the signed-in
        identity is gone or disabled."""
        assert session.identity_id is not None
        async with self.core.store.read() as conn:
            active = await identities.is_active(conn, session.identity_id, session.identity_uid)
            granted = await identities.grants(conn, session.identity_id) if active else None
        if not active:
            return None
        return granted_scopes(pending.scopes, (granted or "").split())

    async def issue(
        self,
        request: Request,
        session: BrowserSession,
        request_id: str,
        pending: AuthorizationRequest,
        client: OAuthClient,
        scopes: tuple[str, ...],
    ) -> Response:
        if not await self.sessions.finish(request_id):  # a double submission: the first one won
            return self.error_page(request, "authorize", CsrfTokenInvalid("this sign-in was already completed"))
        if not client.allows(GrantType.AUTHORIZATION_CODE) or not is_registered(
            pending.redirect_uri, client.redirect_uris
        ):  # the admin changed the client while its user was signing in
            return self.error_page(request, "authorize", UntrustedRedirect(), client.client_id)
        code = await issue_code(self.core, pending, session, scopes)
        request.app.state.requests_total.labels("authorize", "ok", "").inc()
        log.info("authorization code issued", extra={"client_id": pending.client_id, "scopes": " ".join(scopes)})
        return pages.redirect(
            pages.with_query(pending.redirect_uri, {"code": code, "state": pending.state, "iss": self.issuer})
        )

    # --- the pages ------------------------------------------------------------------------------

    def login_page(
        self,
        session: BrowserSession,
        request_id: str,
        client: OAuthClient,
        pending: AuthorizationRequest,
        *,
        error: str = "",
        username: str = "",
        namespace: str = "",
        status: int = 200,
    ) -> Response:
        content = render(
            "login.html",
            client_name=client.name or client.client_id,
            csrf_token=session.csrf,
            request_id=request_id,
            namespace=namespace,
            username=username,
            error=Html(f'<p id="form-error" class="error" role="alert">{html.escape(error)}</p>') if error else EMPTY,
            error_ref=Html(" form-error") if error else EMPTY,
            invalid=Html(' aria-invalid="true"') if error else EMPTY,
            error_described=Html(' aria-describedby="form-error"') if error else EMPTY,
        )
        return pages.page("Sign in", content, status=status, redirect_uri=pending.redirect_uri)

    def consent_page(
        self,
        session: BrowserSession,
        request_id: str,
        client: OAuthClient,
        pending: AuthorizationRequest,
        scopes: tuple[str, ...],
    ) -> Response:
        account = f"{session.namespace}/{session.identity}" if session.namespace else session.identity
        content = render(
            "consent.html",
            client_name=client.name or client.client_id,
            scope_items=pages.scope_items(scopes),
            account=account,
            csrf_token=session.csrf,
            request_id=request_id,
        )
        return pages.page("Allow access", content, redirect_uri=pending.redirect_uri)

    # --- POST /oauth2/login ----------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        try:
            form, session, request_id, pending = await self._form(request)
            client = await self.core.clients.get_client(pending.client_id)
            if client is None:
                raise UntrustedRedirect("unknown application (client_id)")
        except TokenServiceError as exc:
            return self.error_page(request, "login", exc)
        username, namespace = form.get("username") or "", form.get("namespace") or ""
        password = form.get("password")
        if not username or password is None:
            self.denied(request, "login", InvalidRequest(_MISSING), client.client_id)
            return self.login_page(
                session, request_id, client, pending, error=_MISSING, username=username, namespace=namespace, status=400
            )
        try:
            found = await verify_password(
                self.core,
                namespace=namespace,
                identity=username,
                password=password,
                client_address=self.address(request),
                then=lambda _conn, row: (int(row.id), str(row.uid), str(row.namespace), str(row.name)),
            )
        except (CredentialsInvalid, IdentityNotActive) as exc:
            self.denied(request, "login", exc, client.client_id)
            message = _DISABLED if isinstance(exc, IdentityNotActive) else _WRONG_CREDENTIALS
            return self.login_page(
                session, request_id, client, pending, error=message, username=username, namespace=namespace, status=400
            )
        identity_id, uid, found_namespace, name = found
        # A new session (and CSRF token) at login: a cookie planted before it is worth nothing.
        await self.sessions.end(session)
        cookie, signed_in = await self.sessions.start(
            identity_id=identity_id, identity_uid=uid, namespace=found_namespace, identity=name
        )
        await self.sessions.move(request_id, pending, signed_in)
        request.app.state.requests_total.labels("login", "ok", "").inc()
        log.info("signed in", extra={"client_id": client.client_id, "namespace": found_namespace, "identity": name})
        response = await self.proceed(request, signed_in, request_id, pending, client, just_signed_in=True)
        return self.with_cookie(request, response, cookie, signed_in)

    # --- POST /oauth2/consent --------------------------------------------------------------------

    async def consent(self, request: Request) -> Response:
        try:
            form, session, request_id, pending = await self._form(request)
            client = await self.core.clients.get_client(pending.client_id)
            if client is None:
                raise UntrustedRedirect("unknown application (client_id)")
            if not session.signed_in:
                raise CsrfTokenInvalid("sign in first")
            decision = form.get("decision")
            if decision not in {"allow", "deny"}:
                raise InvalidRequest("choose Allow or Deny")
        except TokenServiceError as exc:
            return self.error_page(request, "consent", exc)
        if decision == "deny":
            await self.sessions.finish(request_id)
            return self.error_redirect(
                request, "consent", AccessDenied(), pending.redirect_uri, pending.state, client.client_id
            )
        try:
            scopes = await self.approved_scopes(session, pending)
        except ScopeNotGranted as exc:
            await self.sessions.finish(request_id)
            return self.error_redirect(request, "consent", exc, pending.redirect_uri, pending.state, client.client_id)
        if scopes is None:
            return await self.proceed(request, session, request_id, pending, client)
        assert session.identity_id is not None
        await consents.grant(self.core, session.identity_id, session.identity_uid, client.client_id, scopes)
        return await self.issue(request, session, request_id, pending, client, scopes)

    # --- GET|POST /oauth2/logout (token_service/api/http/logout.py), the stylesheet, the routes --------

    async def logout(self, request: Request) -> Response:
        return await rp_logout.logout(self, request)

    def routes(self) -> list[Route]:
        return [
            Route("/oauth2/authorize", self.authorize, methods=["GET"]),
            Route("/oauth2/login", self.login, methods=["POST"]),
            Route("/oauth2/consent", self.consent, methods=["POST"]),
            Route("/oauth2/logout", self.logout, methods=["GET", "POST"]),
            Route("/oauth2/static/login.css", self.stylesheet, methods=["GET"]),
        ]

    async def stylesheet(self, request: Request) -> Response:
        headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
        return Response(pages.stylesheet(), media_type="text/css", headers=headers)
