"""Admin API outcomes, and the database being out of reach (see the package docstring)."""

from __future__ import annotations

import grpc

from token_service.errors._base import TokenServiceError

__all__ = [
    "AdminError",
    "AlreadyExists",
    "FailedPrecondition",
    "NotFound",
    "PermissionDenied",
    "Unauthenticated",
    "Unavailable",
]


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
    """A dependency (the database, or Redis when SYSTEM_CACHE_URL is set) cannot be reached;
    retry with back-off."""

    status = None
    error = "temporarily_unavailable"
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    challenge = None
    default_message = "the token service cannot reach its database; retry later"

    def __init__(self, message: str | None = None, *, dependency: str = "database") -> None:
        super().__init__(message)
        #: What could not be reached: ``database`` or ``cache`` (Redis); metrics count them apart.
        self.dependency = dependency
