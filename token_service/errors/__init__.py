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

The edges: :func:`token_service.api.http.error_response.oauth_error_response` (the one HTTP exception handler)
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
    │   ├── RequestTooLarge             invalid_request 413 / INVALID_ARGUMENT (HTTP body over the limit)
    │   ├── UntrustedRedirect           invalid_request 400, an error page, never a redirect (authorize, logout)
    │   └── CsrfTokenInvalid            invalid_request 400 (login, consent, logout forms)
    ├── UnsupportedResponseType         unsupported_response_type 400 (authorize) / INVALID_ARGUMENT
    ├── AccessDenied                    access_denied 403 (the user declined consent) / PERMISSION_DENIED
    ├── LoginRequired                   login_required 400 (prompt=none, not signed in) / FAILED_PRECONDITION
    ├── ConsentRequired                 consent_required 400 (prompt=none, consent missing) / FAILED_PRECONDITION
    ├── InvalidClient                   invalid_client 401, Basic challenge / UNAUTHENTICATED
    │   └── InvalidClientAssertion      invalid_client 401 (a refused service-account assertion; ``reason``)
    ├── UnauthorizedClient              unauthorized_client 400 / PERMISSION_DENIED
    ├── UnsupportedGrantType            unsupported_grant_type 400 / INVALID_ARGUMENT
    ├── InvalidTarget                   invalid_target 400 / INVALID_ARGUMENT (RFC 8707 ``resource``)
    ├── InvalidBearerToken              invalid_token 401, Bearer challenge / UNAUTHENTICATED
    │   └── MissingBearerToken          invalid_token 401, challenge without error / UNAUTHENTICATED
    ├── MalformedBearerRequest          invalid_request 400, Bearer challenge / INVALID_ARGUMENT
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

from typing import Final

from token_service.errors._base import REALM, TokenServiceError
from token_service.errors.admin import (
    AdminError,
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from token_service.errors.authorize import (
    AccessDenied,
    ConsentRequired,
    CsrfTokenInvalid,
    LoginRequired,
    UnsupportedResponseType,
    UntrustedRedirect,
)
from token_service.errors.grants import (
    CredentialsInvalid,
    GrantError,
    IdentityNotActive,
    IdentityNotFound,
    IdentityUnauthenticated,
    InsufficientScope,
    NotARefreshToken,
    ScopeNotGranted,
    TokenDisabled,
    TokenExpired,
    TokenInvalid,
    TokenNotFound,
)
from token_service.errors.requests import (
    InvalidBearerToken,
    InvalidClient,
    InvalidClientAssertion,
    InvalidRequest,
    InvalidTarget,
    MalformedBearerRequest,
    MalformedScope,
    MissingBearerToken,
    RequestTooLarge,
    UnauthorizedClient,
    UnsupportedGrantType,
)

__all__ = [
    "LEAVES",
    "REALM",
    "AccessDenied",
    "AdminError",
    "AlreadyExists",
    "ConsentRequired",
    "CredentialsInvalid",
    "CsrfTokenInvalid",
    "FailedPrecondition",
    "GrantError",
    "IdentityNotActive",
    "IdentityNotFound",
    "IdentityUnauthenticated",
    "InsufficientScope",
    "InvalidBearerToken",
    "InvalidClient",
    "InvalidClientAssertion",
    "InvalidRequest",
    "InvalidTarget",
    "LoginRequired",
    "MalformedBearerRequest",
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
    "UnsupportedResponseType",
    "UntrustedRedirect",
    "deny_reason",
    "leaves",
]

#: Every concrete error, explicitly: the table the edges and the tests walk. (InvalidRequest,
#: InvalidClient and InvalidBearerToken are raised themselves and also have a more precise subclass.)
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
    InvalidClientAssertion,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidTarget,
    InvalidBearerToken,
    MalformedBearerRequest,
    MissingBearerToken,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    Unavailable,
    UntrustedRedirect,
    CsrfTokenInvalid,
    UnsupportedResponseType,
    AccessDenied,
    LoginRequired,
    ConsentRequired,
)


def leaves() -> list[type[TokenServiceError]]:
    """:data:`LEAVES` sorted by name, for table tests."""
    return sorted(LEAVES, key=lambda c: c.__name__)


def deny_reason(exc: TokenServiceError) -> str:
    """A short, bounded label for metrics and logs: the seed status, else the class name."""
    return (exc.status or type(exc).__name__).lower()
