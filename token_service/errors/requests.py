"""Malformed requests and the OAuth 2.0 HTTP errors of clients and bearer tokens (see the package docstring)."""

from __future__ import annotations

import grpc

from token_service.errors._base import TokenServiceError

__all__ = [
    "InvalidBearerToken",
    "InvalidClient",
    "InvalidClientAssertion",
    "InvalidRequest",
    "InvalidTarget",
    "MalformedBearerRequest",
    "MalformedScope",
    "MissingBearerToken",
    "RequestTooLarge",
    "UnauthorizedClient",
    "UnsupportedGrantType",
]


class InvalidRequest(TokenServiceError):
    """The request is malformed: missing, oversized or non-UTF-8 field (RFC 6749 invalid_request)."""

    status = None
    error = "invalid_request"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    challenge = None
    default_message = "invalid request"


class MalformedScope(InvalidRequest):
    """A scope is not an RFC 6749 §3.3 scope-token, or there are too many."""

    status = None
    error = "invalid_scope"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    challenge = None
    default_message = "invalid scope"


class RequestTooLarge(InvalidRequest):
    """The HTTP request body exceeds the size limit: invalid_request, answered with 413."""

    status = None
    error = "invalid_request"
    http_status = 413
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    challenge = None
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
    challenge = 'Basic realm="{realm}", charset="UTF-8"'
    default_message = "client authentication failed"


class InvalidClientAssertion(InvalidClient):
    """A client assertion (RFC 7523 §2.2: a Kubernetes service-account token) was refused.

    invalid_client like every client authentication failure (RFC 7523 §3.2, RFC 6749 §5.2);
    ``reason`` says precisely why (``expired``, ``audience``, ``replayed``…) for the metric
    ``native_iam_client_assertions_total`` and the log line, never for the response.
    """

    status = None
    error = "invalid_client"
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    challenge = 'Basic realm="{realm}", charset="UTF-8"'
    default_message = "client assertion refused"

    def __init__(self, reason: str = "refused", message: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class UnauthorizedClient(TokenServiceError):
    """The authenticated client may not use this grant type (RFC 6749 §5.2)."""

    status = None
    error = "unauthorized_client"
    http_status = 400
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    challenge = None
    default_message = "the client may not use this grant type"


class UnsupportedGrantType(TokenServiceError):
    """The token endpoint does not implement this ``grant_type`` (RFC 6749 §5.2)."""

    status = None
    error = "unsupported_grant_type"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    challenge = None
    default_message = "unsupported grant_type"


class InvalidTarget(TokenServiceError):
    """A requested ``resource`` is not an audience of the client (RFC 8707 §2)."""

    status = None
    error = "invalid_target"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    challenge = None
    default_message = "the requested resource is not an audience of this client"


class InvalidBearerToken(TokenServiceError):
    """The bearer access token is malformed, expired, revoked or unknown (RFC 6750 §3.1)."""

    status = None
    error = "invalid_token"
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    challenge = 'Bearer realm="{realm}", error="invalid_token"'
    default_message = "the access token is not valid"


class MalformedBearerRequest(TokenServiceError):
    """The Authorization header is not ``Bearer <token>`` (two tokens, spaces, an empty token):
    RFC 6750 §3.1 invalid_request, 400, as the sidecar answers the same header."""

    status = None
    error = "invalid_request"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    challenge = 'Bearer realm="{realm}", error="invalid_request"'
    default_message = "the Authorization header is not 'Bearer <token>'"


class MissingBearerToken(InvalidBearerToken):
    """No bearer token was sent; RFC 6750 §3.1: the challenge then carries no error code."""

    status = None
    error = "invalid_token"
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    challenge = 'Bearer realm="{realm}"'
    default_message = "a bearer access token is required"
