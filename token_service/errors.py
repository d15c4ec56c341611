"""Errors of the token service's domain, translated only at the edges (gRPC, HTTP).

Every leaf sets, explicitly and never by inheritance:

* ``status`` – the seed's status name (shared/seeds/000) that a gRPC response carries, or
  ``None`` when the error is not a business outcome;
* ``error`` – the RFC 6749 §5.2 / RFC 6750 §3.1 error code an HTTP response carries;
* ``http_status`` – the HTTP status code;
* ``grpc_code`` – the gRPC status code (``OK`` for business outcomes: they travel in the
  response's ``status`` field, not as a gRPC error).

Tree::

    TokenServiceError
    ├── GrantError                      business outcomes of grants and checks
    │   ├── CredentialsInvalid          CREDENTIALS_INVALID / invalid_grant
    │   ├── IdentityNotActive           IDENTITY_NOT_ACTIVE / invalid_grant
    │   ├── IdentityNotFound            IDENTITY_NOT_FOUND / invalid_grant
    │   ├── IdentityUnauthenticated     IDENTITY_UNAUTHENTICATED / invalid_grant
    │   ├── ScopeNotGranted             UNAUTHORIZED / invalid_scope
    │   ├── InsufficientScope           UNAUTHORIZED / insufficient_scope
    │   ├── TokenInvalid                TOKEN_INVALID / invalid_grant
    │   ├── TokenNotFound               TOKEN_NOT_FOUND / invalid_grant
    │   ├── TokenDisabled               TOKEN_DISABLED / invalid_grant
    │   ├── TokenExpired                TOKEN_EXPIRED / invalid_grant
    │   └── NotARefreshToken            TOKEN_IS_NOT_REFRESH_TOKEN / invalid_grant
    ├── InvalidRequest                  invalid_request / INVALID_ARGUMENT
    │   └── MalformedScope              invalid_scope / INVALID_ARGUMENT
    ├── AdminError                      admin API outcomes
    │   ├── NotFound                    NOT_FOUND
    │   ├── AlreadyExists               ALREADY_EXISTS
    │   ├── FailedPrecondition          FAILED_PRECONDITION
    │   ├── Unauthenticated             UNAUTHENTICATED / invalid_token
    │   └── PermissionDenied            PERMISSION_DENIED / insufficient_scope
    └── Unavailable                     temporarily_unavailable / UNAVAILABLE

Messages are safe to show to the caller: they never contain a token, a password or a key.
"""

from __future__ import annotations

from typing import ClassVar

import grpc

__all__ = [
    "AdminError",
    "AlreadyExists",
    "CredentialsInvalid",
    "FailedPrecondition",
    "GrantError",
    "IdentityNotActive",
    "IdentityNotFound",
    "IdentityUnauthenticated",
    "InsufficientScope",
    "InvalidRequest",
    "MalformedScope",
    "NotARefreshToken",
    "NotFound",
    "PermissionDenied",
    "ScopeNotGranted",
    "TokenDisabled",
    "TokenExpired",
    "TokenInvalid",
    "TokenNotFound",
    "TokenServiceError",
    "Unauthenticated",
    "Unavailable",
    "leaves",
]


class TokenServiceError(Exception):
    """Base of every error the token service raises on purpose."""

    status: ClassVar[str | None] = None
    error: ClassVar[str] = "server_error"
    http_status: ClassVar[int] = 500
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    #: Default message, safe for end users; a raise site may give a more precise one.
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class GrantError(TokenServiceError):
    """A grant or check was refused; the caller gets a seed status, not a transport error.

    ``reason`` says why in more detail than the status, for metrics and logs only (never sent
    to the caller): CREDENTIALS_INVALID may be ``unknown_identity``, ``password_disabled``,
    ``wrong_password``, ``locked_out`` or ``busy`` (no lockout slot freed in time).
    """

    def __init__(self, message: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or (self.status or "refused").lower()


class CredentialsInvalid(GrantError):
    """Unknown identity, password auth disabled, wrong password or locked out (indistinguishable)."""

    status = "CREDENTIALS_INVALID"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    default_message = "identity or password is not valid"


class IdentityNotActive(GrantError):
    """The identity was manually disabled."""

    status = "IDENTITY_NOT_ACTIVE"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    default_message = "identity is disabled"


class IdentityNotFound(GrantError):
    """The identity a refresh token was issued to no longer exists."""

    status = "IDENTITY_NOT_FOUND"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    default_message = "identity not found"


class IdentityUnauthenticated(GrantError):
    """The identity's policy no longer grants every scope of the refresh token."""

    status = "IDENTITY_UNAUTHENTICATED"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    default_message = "the identity's policy no longer grants the token's scopes"


class ScopeNotGranted(GrantError):
    """A requested scope is outside the identity's policy (RFC 6749 §5.2 invalid_scope)."""

    status = "UNAUTHORIZED"
    error = "invalid_scope"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    default_message = "requested scope not granted"


class InsufficientScope(GrantError):
    """The token lacks a scope the caller requires (RFC 6750 §3.1 insufficient_scope)."""

    status = "UNAUTHORIZED"
    error = "insufficient_scope"
    http_status = 403
    grpc_code = grpc.StatusCode.OK
    default_message = "missing scope"

    def __init__(self, message: str | None = None, claims: object | None = None) -> None:
        super().__init__(message, reason="missing_scope")
        #: The verified claims of the token (a :class:`token_service.tokens.TokenClaims`).
        self.claims = claims


class TokenInvalid(GrantError):
    """Bad format, bad signature, unknown key/issuer/algorithm, or the wrong kind of token."""

    status = "TOKEN_INVALID"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    default_message = "token is invalid"


class TokenNotFound(GrantError):
    """The token (or its identity) was deleted after its creation."""

    status = "TOKEN_NOT_FOUND"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    default_message = "token not found"


class TokenDisabled(GrantError):
    """The token, its family or its identity was manually disabled."""

    status = "TOKEN_DISABLED"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    default_message = "token is disabled"


class TokenExpired(GrantError):
    """The token has expired (or is not valid yet)."""

    status = "TOKEN_EXPIRED"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    default_message = "token has expired"


class NotARefreshToken(GrantError):
    """A valid access token was presented where a refresh token is needed."""

    status = "TOKEN_IS_NOT_REFRESH_TOKEN"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    default_message = "token is not a refresh token"


class InvalidRequest(TokenServiceError):
    """The request is malformed: missing, oversized or non-UTF-8 field (RFC 6749 invalid_request)."""

    status = None
    error = "invalid_request"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    default_message = "invalid request"


class MalformedScope(InvalidRequest):
    """A scope is not an RFC 6749 §3.3 scope-token, or there are too many."""

    status = None
    error = "invalid_scope"
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    default_message = "invalid scope"


class AdminError(TokenServiceError):
    """An admin API call was refused."""


class NotFound(AdminError):
    """The identity, token or key named by an admin call does not exist."""

    status = None
    error = "not_found"
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND
    default_message = "not found"


class AlreadyExists(AdminError):
    """An admin call would create something that already exists."""

    status = None
    error = "already_exists"
    http_status = 409
    grpc_code = grpc.StatusCode.ALREADY_EXISTS
    default_message = "already exists"


class FailedPrecondition(AdminError):
    """The operation does not apply to this deployment (e.g. rotating keys that come from files)."""

    status = None
    error = "failed_precondition"
    http_status = 409
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    default_message = "the operation does not apply in this configuration"


class Unauthenticated(AdminError):
    """No bearer token, or one that is invalid, expired, disabled or deleted (RFC 6750 invalid_token)."""

    status = None
    error = "invalid_token"
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    default_message = "a valid bearer access token is required"


class PermissionDenied(AdminError):
    """The bearer token is valid but lacks the ``iam:admin`` scope."""

    status = None
    error = "insufficient_scope"
    http_status = 403
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    default_message = "the iam:admin scope is required"


class Unavailable(TokenServiceError):
    """A dependency (the database) cannot be reached; retry with back-off."""

    status = None
    error = "temporarily_unavailable"
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    default_message = "the token service cannot reach its database; retry later"


def leaves() -> list[type[TokenServiceError]]:
    """Every concrete error class (no subclasses of its own besides itself), for table tests."""
    result: list[type[TokenServiceError]] = []
    pending: list[type[TokenServiceError]] = [TokenServiceError]
    while pending:
        cls = pending.pop()
        subs = cls.__subclasses__()
        pending.extend(subs)
        if cls not in (TokenServiceError, GrantError, AdminError) and (not subs or cls is InvalidRequest):
            result.append(cls)
    return sorted(result, key=lambda c: c.__name__)
