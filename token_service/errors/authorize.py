"""Errors of the browser-facing endpoints: the authorization endpoint (RFC 6749 §4.1.2.1), the login
and consent forms, and RP-initiated logout (see the package docstring).

Once the client and its redirect URI are known good, an authorization error travels back to the
client in the redirect (``error`` = the leaf's ``error``); before that, and for the forms, it is
an HTML error page with the leaf's ``http_status``.
"""

from __future__ import annotations

import grpc

from token_service.errors._base import TokenServiceError
from token_service.errors.requests import InvalidRequest

__all__ = [
    "AccessDenied",
    "ConsentRequired",
    "CsrfTokenInvalid",
    "LoginRequired",
    "UnsupportedResponseType",
    "UntrustedRedirect",
]


class UntrustedRedirect(InvalidRequest):
    """The client is unknown, or the redirect (or post-logout redirect) URI is missing or not one of
    its registered URIs, or an ``id_token_hint`` is not ours: an error page, never a redirect
    (RFC 6749 §4.1.2.1, RFC 9700 §4.11: no open redirector)."""

    status = None
    error = "invalid_request"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    challenge = None
    default_message = "the application's sign-in request is not valid"


class CsrfTokenInvalid(InvalidRequest):
    """A login, consent or logout form arrived without the CSRF token of its browser session, with
    a wrong one, or after the session or the authorization request expired."""

    status = None
    error = "invalid_request"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    challenge = None
    default_message = "this form has expired; go back to the application and start again"


class UnsupportedResponseType(TokenServiceError):
    """``response_type`` is not ``code`` (RFC 6749 §4.1.2.1 unsupported_response_type)."""

    status = None
    error = "unsupported_response_type"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    challenge = None
    default_message = "only response_type=code is supported"


class AccessDenied(TokenServiceError):
    """The user declined the consent (RFC 6749 §4.1.2.1 access_denied)."""

    status = None
    error = "access_denied"
    http_status = 403
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    challenge = None
    default_message = "the user denied the request"


class LoginRequired(TokenServiceError):
    """``prompt=none`` without a login session (OpenID Connect Core §3.1.2.6 login_required)."""

    status = None
    error = "login_required"
    http_status = 400
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    challenge = None
    default_message = "the user is not signed in"


class ConsentRequired(TokenServiceError):
    """``prompt=none`` and the client needs a consent not given yet (OpenID Connect Core §3.1.2.6)."""

    status = None
    error = "consent_required"
    http_status = 400
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    challenge = None
    default_message = "the user has not approved this application's request"
