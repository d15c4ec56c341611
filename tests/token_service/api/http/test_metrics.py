"""OAuth HTTP metrics: outcomes and deny reasons, valid Prometheus exposition."""

from __future__ import annotations

import asyncio
import subprocess

import httpx

from tests.conftest import require_tool
from tests.token_service.api.http.conftest import OAuthService, password_grant
from token_service.store import Store


async def test_outcomes_and_deny_reasons_are_counted(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A grant and a refusal show up with endpoint, outcome and reason labels."""
    await password_grant(http, oauth_service, scope="orders:read")
    await http.post(
        "/oauth2/token",
        data={"grant_type": "password", "username": "alice", "password": "wrong"},
        headers=oauth_service.basic("web"),
    )
    registry = oauth_service.registry
    ok = registry.get_sample_value(
        "native_iam_http_oauth_requests_total", {"endpoint": "token", "outcome": "ok", "reason": ""}
    )
    denied = registry.get_sample_value(
        "native_iam_http_oauth_requests_total",
        {"endpoint": "token", "outcome": "invalid_grant", "reason": "credentials_invalid"},
    )
    assert ok == 1 and denied == 1


async def test_exposition_passes_promtool(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """The service's /metrics text, with the HTTP counters in it, passes `promtool check metrics`."""
    promtool = require_tool("promtool")
    await password_grant(http, oauth_service, scope="orders:read")
    text = oauth_service.app.metrics.exposition()
    assert b"native_iam_http_oauth_requests_total" in text
    result = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()


async def test_http_grants_count_in_the_shared_grant_counter(
    http: httpx.AsyncClient, oauth_service: OAuthService
) -> None:
    """HTTP grants land in native_iam_grants_total{grant, status} beside gRPC ones (seed statuses)."""
    await password_grant(http, oauth_service, scope="orders:read")
    await http.post(
        "/oauth2/token",
        data={"grant_type": "password", "username": "alice", "password": "wrong"},
        headers=oauth_service.basic("web"),
    )
    value = oauth_service.registry.get_sample_value
    assert value("native_iam_grants_total", {"grant": "password", "status": "OK"}) == 1
    assert value("native_iam_grants_total", {"grant": "password", "status": "CREDENTIALS_INVALID"}) == 1


async def test_http_denials_count_in_the_shared_denial_counter(
    http: httpx.AsyncClient, oauth_service: OAuthService
) -> None:
    """A refused HTTP grant lands in native_iam_grant_denials_total{grant, reason} as a gRPC one does."""
    await http.post(
        "/oauth2/token",
        data={"grant_type": "password", "username": "alice", "password": "wrong"},
        headers=oauth_service.basic("web"),
    )
    value = oauth_service.registry.get_sample_value
    assert value("native_iam_grant_denials_total", {"grant": "password", "reason": "wrong_password"}) == 1
    assert value("native_iam_grants_total", {"grant": "password", "status": "CREDENTIALS_INVALID"}) == 1


async def test_http_database_failures_count_like_grpc_ones(
    http: httpx.AsyncClient, oauth_service: OAuthService
) -> None:
    """A 503 because the database is unreachable lands in native_iam_db_errors_total{kind="unavailable"},
    as the same failure of a gRPC call does."""
    real = oauth_service.core.store
    oauth_service.core.store = Store("sqlite:////nonexistent/dir/native-iam.db")
    try:
        response = await password_grant(http, oauth_service, "web")
    finally:
        await oauth_service.core.store.close()
        oauth_service.core.store = real
    assert response.status_code == 503
    assert oauth_service.registry.get_sample_value("native_iam_db_errors_total", {"kind": "unavailable"}) == 1
