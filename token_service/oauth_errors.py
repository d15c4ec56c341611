"""Errors that exist only at the OAuth 2.0 HTTP transport, as leaves of the core's error tree.

The seed statuses and their RFC codes live in one table: the leaves of
:mod:`token_service.errors` (each sets ``status``, ``error``, ``http_status`` and ``grpc_code``).
This module adds what only the HTTP endpoints can fail with — client authentication, grant
types, body size, bearer tokens at /oauth2/userinfo — and :func:`challenge_headers`, the one
place that knows which response headers go with which RFC error code::

    TokenServiceError (token_service.errors)
    ├── InvalidRequest
    │   └── RequestTooLarge       413 invalid_request          body over the limit
    ├── InvalidClient             401 invalid_client           RFC 6749 §5.2
    ├── UnauthorizedClient        400 unauthorized_client      RFC 6749 §5.2
    ├── UnsupportedGrantType      400 unsupported_grant_type   RFC 6749 §5.2
    ├── InvalidTarget             400 invalid_target           RFC 8707 §2 (``resource``)
    └── InvalidBearerToken        401 invalid_token            RFC 6750 §3.1
        └── MissingBearerToken    401 invalid_token            no token at all (challenge without error)
"""

from __future__ import annotations

from typing import Final

import grpc

from token_service.errors import InvalidRequest, TokenServiceError

__all__ = [
    "REALM",
    "InvalidBearerToken",
    "InvalidClient",
    "InvalidTarget",
    "MissingBearerToken",
    "RequestTooLarge",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "challenge_headers",
    "deny_reason",
]

#: Realm announced in ``WWW-Authenticate`` challenges.
REALM: Final = "native-iam"


class RequestTooLarge(InvalidRequest):
    """The request body exceeds the size limit: invalid_request, answered with 413."""

    status = None
    error = "invalid_request"
    http_status = 413
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    default_message = "request body too large"


class InvalidClient(TokenServiceError):
    """Client authentication failed, is missing, or used the wrong method (RFC 6749 §5.2).

    Always 401 with a ``Basic`` challenge: RFC 6749 §5.2 requires it when the client used the
    Authorization header, and RFC 9110 §15.5.2 requires a challenge on every 401.
    """

    status = None
    error = "invalid_client"
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    default_message = "client authentication failed"


class UnauthorizedClient(TokenServiceError):
    """The authenticated client may not use this grant type (RFC 6749 §5.2)."""

    status = None
    error = "unauthorized_client"
    http_status = 400
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    default_message = "the client may not use this grant type"


class UnsupportedGrantType(TokenServiceError):
    """The token endpoint does not implement this ``grant_type`` (RFC 6749 §5.2)."""

    status = None
    error = "unsupported_grant_type"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    default_message = "unsupported grant_type"


class InvalidTarget(TokenServiceError):
    """A requested ``resource`` is not an audience of the client (RFC 8707 §2)."""

    status = None
    error = "invalid_target"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    default_message = "the requested resource is not an audience of this client"


class InvalidBearerToken(TokenServiceError):
    """The bearer access token is malformed, expired, revoked or unknown (RFC 6750 §3.1)."""

    status = None
    error = "invalid_token"
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    default_message = "the access token is not valid"


class MissingBearerToken(InvalidBearerToken):
    """No bearer token was sent; RFC 6750 §3.1: the challenge then carries no error code."""

    status = None
    error = "invalid_token"
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    default_message = "a bearer access token is required"


def challenge_headers(exc: TokenServiceError, *, required_scope: str = "") -> dict[str, str]:
    """The headers that go with ``exc``'s RFC error code (challenges, Retry-After)."""
    if exc.error == "invalid_client":
        return {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
    if isinstance(exc, MissingBearerToken):
        return {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
    if exc.error == "invalid_token":
        return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token"'}
    if exc.error == "insufficient_scope":
        return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", scope="{required_scope}"'}
    if exc.error == "temporarily_unavailable":
        return {"Retry-After": "1"}
    return {}


def deny_reason(exc: TokenServiceError) -> str:
    """A short, bounded label for metrics and logs: the seed status, else the class name."""
    return (exc.status or type(exc).__name__).lower()
