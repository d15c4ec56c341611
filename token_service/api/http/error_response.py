"""The one place where a :class:`~token_service.errors.TokenServiceError` becomes an HTTP answer:
RFC 6749 §5.2 JSON with the error's status, ``WWW-Authenticate`` challenge (RFC 6750 §3 for
bearer errors) and ``Retry-After`` on a 503; counted and logged once (registered as the exception
handler by :func:`token_service.api.http.routes.create_app`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from token_service.errors import REALM, InsufficientScope, TokenServiceError, deny_reason
from token_service.id_tokens import OPENID

__all__ = ["NO_STORE", "challenge_headers", "oauth_error_response"]

# The logger of the OAuth endpoints (its name predates this module; log filters rely on it).
log = logging.getLogger("token_service.api.http.routes")

#: Every token-endpoint answer, success or error (RFC 6749 §5.1, §5.2).
NO_STORE: Final[Mapping[str, str]] = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def challenge_headers(exc: TokenServiceError, *, required_scope: str = "") -> dict[str, str]:
    """The headers that go with ``exc``: its ``WWW-Authenticate`` challenge, and Retry-After on a 503."""
    headers: dict[str, str] = {}
    if exc.challenge is not None:
        headers["WWW-Authenticate"] = exc.challenge.format(realm=REALM, scope=required_scope)
    if exc.http_status == 503:
        headers["Retry-After"] = "1"
    return headers


def oauth_error_response(request: Request, exc: Exception) -> Response:
    """RFC 6749 §5.2 JSON for a :class:`TokenServiceError`, with its status and challenge headers."""
    if not isinstance(exc, TokenServiceError):  # registered for TokenServiceError only
        raise exc
    endpoint = request.scope.get("native_iam_endpoint", "unknown")
    reason = deny_reason(exc)
    if request.app.state.metrics is not None:
        request.app.state.metrics.count_failure(exc)
    request.app.state.requests_total.labels(endpoint, exc.error, reason).inc()
    log.info(
        "oauth request denied",
        extra={
            "endpoint": endpoint,
            "error": exc.error,
            "reason": reason,
            "client_id": request.scope.get("native_iam_client", ""),
        },
    )
    required = OPENID if isinstance(exc, InsufficientScope) else ""
    headers = {**NO_STORE, **challenge_headers(exc, required_scope=required)}
    body = {"error": exc.error, "error_description": exc.message}
    return JSONResponse(body, status_code=exc.http_status, headers=headers)
