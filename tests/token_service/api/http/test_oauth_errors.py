"""The error table (token_service/errors/) and the one exception handler: every error leaf → its HTTP answer."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from token_service import errors
from token_service.api.http.error_response import challenge_headers, oauth_error_response

ALL_LEAVES = errors.leaves()


def _app(exc: Exception) -> Starlette:
    async def fail(request: Request) -> None:
        raise exc

    app = Starlette(
        routes=[Route("/", fail, methods=["GET"])], exception_handlers={errors.TokenServiceError: oauth_error_response}
    )
    app.state.metrics = None
    app.state.requests_total = Counter(
        "t_requests_total", "test", ["endpoint", "outcome", "reason"], registry=CollectorRegistry()
    )
    return app


@pytest.mark.parametrize("leaf", ALL_LEAVES, ids=lambda c: c.__name__)
async def test_every_leaf_renders_its_status_and_code(leaf: type[errors.TokenServiceError]) -> None:
    """The handler answers each leaf with its own HTTP status and RFC `error`, JSON and no-store."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(leaf())), base_url="http://t") as client:
        response = await client.get("/")
    assert response.status_code == leaf.http_status
    assert response.json() == {"error": leaf.error, "error_description": leaf.default_message}
    assert response.headers["cache-control"] == "no-store"
    if response.status_code == 401:
        assert response.headers["www-authenticate"].split()[0] in {"Basic", "Bearer"}


def test_each_seed_status_maps_to_one_rfc_code() -> None:
    """The table: the seed statuses of the grants and checks and their RFC error codes."""
    table = {(leaf.status, leaf.error, leaf.http_status) for leaf in errors.leaves() if leaf.status}
    assert table == {
        ("CREDENTIALS_INVALID", "invalid_grant", 400),
        ("IDENTITY_NOT_ACTIVE", "invalid_grant", 400),
        ("IDENTITY_NOT_FOUND", "invalid_grant", 400),
        ("IDENTITY_UNAUTHENTICATED", "invalid_grant", 400),
        ("TOKEN_INVALID", "invalid_grant", 400),
        ("TOKEN_NOT_FOUND", "invalid_grant", 400),
        ("TOKEN_DISABLED", "invalid_grant", 400),
        ("TOKEN_EXPIRED", "invalid_grant", 400),
        ("TOKEN_IS_NOT_REFRESH_TOKEN", "invalid_grant", 400),
        ("UNAUTHORIZED", "invalid_scope", 400),  # password grant: scope outside the policy
        ("UNAUTHORIZED", "insufficient_scope", 403),  # bearer use: the token lacks a scope
    }


def test_invalid_client_challenge_is_basic() -> None:
    """invalid_client carries `WWW-Authenticate: Basic realm="native-iam"`."""
    headers = challenge_headers(errors.InvalidClient())
    assert headers == {"WWW-Authenticate": 'Basic realm="native-iam", charset="UTF-8"'}


def test_missing_bearer_token_challenge_has_no_error() -> None:
    """RFC 6750 §3.1: a request without any token gets a challenge without an error code."""
    assert challenge_headers(errors.MissingBearerToken()) == {"WWW-Authenticate": 'Bearer realm="native-iam"'}


def test_insufficient_scope_challenge_names_the_scope() -> None:
    """insufficient_scope names the scope the resource needs."""
    headers = challenge_headers(errors.InsufficientScope(), required_scope="openid")
    assert headers["WWW-Authenticate"].endswith('error="insufficient_scope", scope="openid"')


def test_unavailable_says_when_to_retry() -> None:
    """temporarily_unavailable carries Retry-After."""
    assert challenge_headers(errors.Unavailable()) == {"Retry-After": "1"}


def test_deny_reason_is_bounded() -> None:
    """Metric/log reasons are the seed status or the class name, never a message."""
    assert errors.deny_reason(errors.TokenExpired("secret detail")) == "token_expired"
    assert errors.deny_reason(errors.InvalidClient("x")) == "invalidclient"
