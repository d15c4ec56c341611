"""Business outcomes of grants and checks: a seed status in the response, gRPC OK (see the package docstring)."""

from __future__ import annotations

import grpc

from token_service.errors._base import TokenServiceError

__all__ = [
    "CredentialsInvalid",
    "GrantError",
    "IdentityNotActive",
    "IdentityNotFound",
    "IdentityUnauthenticated",
    "InsufficientScope",
    "NotARefreshToken",
    "ScopeNotGranted",
    "TokenDisabled",
    "TokenExpired",
    "TokenInvalid",
    "TokenNotFound",
]


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
