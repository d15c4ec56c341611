"""Every error the token service raises on purpose: one tree, one table, translated only at the edges.

Every leaf sets, explicitly and never by inheritance:

* ``status`` – the seed's status name (shared/seeds/000) that a gRPC response carries, or
  ``None`` when the error is not a business outcome;
* ``error`` – the RFC 6749 §5.2 / RFC 6750 §3.1 / RFC 8707 error code an HTTP response carries;
* ``http_status`` – the HTTP status code;
* ``grpc_code`` – the gRPC status code (``OK`` for business outcomes: they travel in the
  response's ``status`` field, not as a gRPC error);
* ``challenge`` – the HTTP ``WWW-Authenticate`` value (``{realm}``, ``{scope}`` filled in by the
  HTTP edge), on every 401 (RFC 9110 §15.5.2) and on insufficient_scope (RFC 6750 §3.1); else None.

The edges: :func:`token_service.api.http.routes.oauth_error_response` (the one HTTP exception handler)
and :func:`token_service.api.grpc.edge.unary` / ``stream`` (the one gRPC boundary). :data:`LEAVES` lists
every leaf, so which errors exist never depends on which modules happen to be imported.

Tree (leaf: seed status / RFC code / HTTP / gRPC)::

    TokenServiceError
    ├── GrantError                      business outcomes of grants and checks (gRPC OK)
    │   ├── CredentialsInvalid          CREDENTIALS_INVALID / invalid_grant 400
    │   ├── IdentityNotActive           IDENTITY_NOT_ACTIVE / invalid_grant 400
    │   ├── IdentityNotFound            IDENTITY_NOT_FOUND / invalid_grant 400
    │   ├── IdentityUnauthenticated     IDENTITY_UNAUTHENTICATED / invalid_grant 400
    │   ├── ScopeNotGranted             UNAUTHORIZED / invalid_scope 400
    │   ├── InsufficientScope           UNAUTHORIZED / insufficient_scope 403, Bearer challenge
    │   ├── TokenInvalid                TOKEN_INVALID / invalid_grant 400
    │   ├── TokenNotFound               TOKEN_NOT_FOUND / invalid_grant 400
    │   ├── TokenDisabled               TOKEN_DISABLED / invalid_grant 400
    │   ├── TokenExpired                TOKEN_EXPIRED / invalid_grant 400
    │   └── NotARefreshToken            TOKEN_IS_NOT_REFRESH_TOKEN / invalid_grant 400
    ├── InvalidRequest                  invalid_request 400 / INVALID_ARGUMENT
    │   ├── MalformedScope              invalid_scope 400 / INVALID_ARGUMENT
    │   └── RequestTooLarge             invalid_request 413 / INVALID_ARGUMENT (HTTP body over the limit)
    ├── InvalidClient                   invalid_client 401, Basic challenge / UNAUTHENTICATED
    ├── UnauthorizedClient              unauthorized_client 400 / PERMISSION_DENIED
    ├── UnsupportedGrantType            unsupported_grant_type 400 / INVALID_ARGUMENT
    ├── InvalidTarget                   invalid_target 400 / INVALID_ARGUMENT (RFC 8707 ``resource``)
    ├── InvalidBearerToken              invalid_token 401, Bearer challenge / UNAUTHENTICATED
    │   └── MissingBearerToken          invalid_token 401, challenge without error / UNAUTHENTICATED
    ├── AdminError                      admin API outcomes
    │   ├── NotFound                    not_found 404 / NOT_FOUND
    │   ├── AlreadyExists               already_exists 409 / ALREADY_EXISTS
    │   ├── FailedPrecondition          failed_precondition 409 / FAILED_PRECONDITION
    │   ├── Unauthenticated             invalid_token 401 / UNAUTHENTICATED
    │   └── PermissionDenied            insufficient_scope 403 / PERMISSION_DENIED
    └── Unavailable                     temporarily_unavailable 503 / UNAVAILABLE

Messages are safe to show to the caller: they never contain a token, a password or a key.
"""

from __future__ import annotations

from typing import ClassVar, Final

import grpc

__all__ = [
    "LEAVES",
    "REALM",
    "AdminError",
    "AlreadyExists",
    "CredentialsInvalid",
    "FailedPrecondition",
    "GrantError",
    "IdentityNotActive",
    "IdentityNotFound",
    "IdentityUnauthenticated",
    "InsufficientScope",
    "InvalidBearerToken",
    "InvalidClient",
    "InvalidRequest",
    "InvalidTarget",
    "MalformedScope",
    "MissingBearerToken",
    "NotARefreshToken",
    "NotFound",
    "PermissionDenied",
    "RequestTooLarge",
    "ScopeNotGranted",
    "TokenDisabled",
    "TokenExpired",
    "TokenInvalid",
    "TokenNotFound",
    "TokenServiceError",
    "Unauthenticated",
    "UnauthorizedClient",
    "Unavailable",
    "UnsupportedGrantType",
    "deny_reason",
    "leaves",
]

#: Realm announced in ``WWW-Authenticate`` challenges.
REALM: Final = "native-iam"


class TokenServiceError(Exception):
    """Base of every error the token service raises on purpose."""

    status: ClassVar[str | None] = None
    error: ClassVar[str] = "server_error"
    http_status: ClassVar[int] = 500
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    #: The HTTP ``WWW-Authenticate`` value, with ``{realm}`` and ``{scope}`` to fill in, or None.
    challenge: ClassVar[str | None] = None
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
    challenge = None
    default_message = "identity or password is not valid"


class IdentityNotActive(GrantError):
    """The identity was manually disabled."""

    status = "IDENTITY_NOT_ACTIVE"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    challenge = None
    default_message = "identity is disabled"


class IdentityNotFound(GrantError):
    """The identity a refresh token was issued to no longer exists."""

    status = "IDENTITY_NOT_FOUND"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    challenge = None
    default_message = "identity not found"


class IdentityUnauthenticated(GrantError):
    """The identity's policy no longer grants every scope of the refresh token."""

    status = "IDENTITY_UNAUTHENTICATED"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    challenge = None
    default_message = "the identity's policy no longer grants the token's scopes"


class ScopeNotGranted(GrantError):
    """A requested scope is outside the identity's policy (RFC 6749 §5.2 invalid_scope)."""

    status = "UNAUTHORIZED"
    error = "invalid_scope"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    challenge = None
    default_message = "requested scope not granted"


class InsufficientScope(GrantError):
    """The token lacks a scope the caller requires (RFC 6750 §3.1 insufficient_scope)."""

    status = "UNAUTHORIZED"
    error = "insufficient_scope"
    http_status = 403
    grpc_code = grpc.StatusCode.OK
    challenge = 'Bearer realm="{realm}", error="insufficient_scope", scope="{scope}"'
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
    challenge = None
    default_message = "token is invalid"


class TokenNotFound(GrantError):
    """The token (or its identity) was deleted after its creation."""

    status = "TOKEN_NOT_FOUND"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    challenge = None
    default_message = "token not found"


class TokenDisabled(GrantError):
    """The token, its family or its identity was manually disabled."""

    status = "TOKEN_DISABLED"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    challenge = None
    default_message = "token is disabled"


class TokenExpired(GrantError):
    """The token has expired (or is not valid yet)."""

    status = "TOKEN_EXPIRED"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    challenge = None
    default_message = "token has expired"


class NotARefreshToken(GrantError):
    """A valid access token was presented where a refresh token is needed."""

    status = "TOKEN_IS_NOT_REFRESH_TOKEN"
    error = "invalid_grant"
    http_status = 400
    grpc_code = grpc.StatusCode.OK
    challenge = None
    default_message = "token is not a refresh token"


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


class MissingBearerToken(InvalidBearerToken):
    """No bearer token was sent; RFC 6750 §3.1: the challenge then carries no error code."""

    status = None
    error = "invalid_token"
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    challenge = 'Bearer realm="{realm}"'
    default_message = "a bearer access token is required"


class AdminError(TokenServiceError):
    """An admin API call was refused."""


class NotFound(AdminError):
    """The identity, token or key named by an admin call does not exist."""

    status = None
    error = "not_found"
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND
    challenge = None
    default_message = "not found"


class AlreadyExists(AdminError):
    """An admin call would create something that already exists."""

    status = None
    error = "already_exists"
    http_status = 409
    grpc_code = grpc.StatusCode.ALREADY_EXISTS
    challenge = None
    default_message = "already exists"


class FailedPrecondition(AdminError):
    """The operation does not apply to this deployment (e.g. rotating keys that come from files)."""

    status = None
    error = "failed_precondition"
    http_status = 409
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    challenge = None
    default_message = "the operation does not apply in this configuration"


class Unauthenticated(AdminError):
    """No bearer token, or one that is invalid, expired, disabled or deleted (RFC 6750 invalid_token)."""

    status = None
    error = "invalid_token"
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    challenge = 'Bearer realm="{realm}", error="invalid_token"'
    default_message = "a valid bearer access token is required"


class PermissionDenied(AdminError):
    """The bearer token is valid but lacks the ``iam:admin`` scope."""

    status = None
    error = "insufficient_scope"
    http_status = 403
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    challenge = 'Bearer realm="{realm}", error="insufficient_scope", scope="{scope}"'
    default_message = "the iam:admin scope is required"


class Unavailable(TokenServiceError):
    """A dependency (the database) cannot be reached; retry with back-off."""

    status = None
    error = "temporarily_unavailable"
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    challenge = None
    default_message = "the token service cannot reach its database; retry later"


#: Every concrete error, explicitly: the table the edges and the tests walk. (InvalidRequest and
#: InvalidBearerToken are raised themselves and also have a more precise subclass.)
LEAVES: Final[tuple[type[TokenServiceError], ...]] = (
    CredentialsInvalid,
    IdentityNotActive,
    IdentityNotFound,
    IdentityUnauthenticated,
    ScopeNotGranted,
    InsufficientScope,
    TokenInvalid,
    TokenNotFound,
    TokenDisabled,
    TokenExpired,
    NotARefreshToken,
    InvalidRequest,
    MalformedScope,
    RequestTooLarge,
    InvalidClient,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidTarget,
    InvalidBearerToken,
    MissingBearerToken,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    Unavailable,
)


def leaves() -> list[type[TokenServiceError]]:
    """:data:`LEAVES` sorted by name, for table tests."""
    return sorted(LEAVES, key=lambda c: c.__name__)


def deny_reason(exc: TokenServiceError) -> str:
    """A short, bounded label for metrics and logs: the seed status, else the class name."""
    return (exc.status or type(exc).__name__).lower()
