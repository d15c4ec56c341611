"""Refresh-token rotation over HTTP (RFC 9700 §2.2.2, §4.14.2), as documented in docs/oauth-http.md.

Semantics: with rotation on, a refresh spends the presented token and returns a new refresh
token of the same family, with exactly the old scopes and the family's original expiry. The
spent token presented again within NATIVE_IAM_REFRESH_GRACE_S (concurrent or retried requests)
gets another fresh pair; presented after the window it revokes the whole family (every refresh
and access token of the grant), emits REFRESH_TOKEN_REUSE revocation events, and is refused
with invalid_grant.
"""

from __future__ import annotations

import asyncio

import httpx
import jwt
from sqlalchemy import select

from native_iam.oauth.v1 import feed_pb2
from tests.token_service.api.http.conftest import GRACE_S, OAuthService, password_grant
from token_service.store.tables import revocations


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


async def _refresh(
    http: httpx.AsyncClient, service: OAuthService, refresh_token: str, client: str = "rotating", **extra: str
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return await http.post("/oauth2/token", data=data, headers=service.basic(client))


async def _active(http: httpx.AsyncClient, service: OAuthService, token: str) -> bool:
    response = await http.post("/oauth2/introspect", data={"token": token}, headers=service.basic("web"))
    return bool(response.json()["active"])


async def test_rotation_returns_new_refresh_token_of_same_family(
    http: httpx.AsyncClient, oauth_service: OAuthService
) -> None:
    """A rotating client gets a new refresh token of the same family, with the family's expiry."""
    first = (await password_grant(http, oauth_service, "rotating", scope="orders:read")).json()
    second = (await _refresh(http, oauth_service, first["refresh_token"])).json()
    old, new = _claims(first["refresh_token"]), _claims(second["refresh_token"])
    assert new["jti"] != old["jti"] and new["fam"] == old["fam"]
    assert new["exp"] == old["exp"]  # rotation never extends the family's lifetime


async def test_public_client_rotates_by_default(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A public client (auth method none) gets rotation without configuring it (RFC 9700 §2.2.2)."""
    data = {"grant_type": "password", "username": "alice", "password": "s3cret-pass", "client_id": "spa"}
    first = (await http.post("/oauth2/token", data=data)).json()
    second = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "spa"},
    )
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]


async def test_rotated_token_keeps_exactly_the_old_scopes(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """Narrowing `scope` narrows the access token only; the new refresh token keeps the old scopes."""
    first = (await password_grant(http, oauth_service, "rotating", scope="orders:read orders:write")).json()
    second = (await _refresh(http, oauth_service, first["refresh_token"], scope="orders:read")).json()
    assert second["scope"] == "orders:read"
    assert _claims(second["refresh_token"])["scope"] == "orders:read orders:write"
    third = await _refresh(http, oauth_service, second["refresh_token"])
    assert third.json()["scope"] == "orders:read orders:write"


async def test_reuse_within_grace_gets_a_fresh_pair(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """The spent token presented again inside the grace window succeeds (a retried request)."""
    first = (await password_grant(http, oauth_service, "rotating", scope="orders:read")).json()
    assert (await _refresh(http, oauth_service, first["refresh_token"])).status_code == 200
    retry = await _refresh(http, oauth_service, first["refresh_token"])
    assert retry.status_code == 200 and retry.json()["refresh_token"] != first["refresh_token"]


async def test_reuse_after_grace_revokes_the_family(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """After the window, reuse is refused, every token of the family dies, and feed events say why."""
    first = (await password_grant(http, oauth_service, "rotating", scope="orders:read")).json()
    second = (await _refresh(http, oauth_service, first["refresh_token"])).json()
    later = oauth_service.core.clock() + GRACE_S + 1
    oauth_service.core.clock = lambda: later
    reuse = await _refresh(http, oauth_service, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert (await _refresh(http, oauth_service, second["refresh_token"])).json()["error"] == "invalid_grant"
    assert not await _active(http, oauth_service, second["access_token"])
    assert not await _active(http, oauth_service, first["access_token"])
    async with oauth_service.core.store.read() as conn:
        reasons = (await conn.execute(select(revocations.c.jti, revocations.c.reason))).all()
    revoked = {jti for jti, reason in reasons if reason == feed_pb2.REFRESH_TOKEN_REUSE}
    assert _claims(second["refresh_token"])["jti"] in revoked and _claims(second["access_token"])["jti"] in revoked


async def test_50_concurrent_refreshes_of_one_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """50 concurrent refreshes of one token: no 5xx; all inside the grace window succeed with
    distinct refresh tokens of the same family, each usable afterwards; no family revocation."""
    first = (await password_grant(http, oauth_service, "rotating", scope="orders:read")).json()
    async with httpx.AsyncClient(base_url=oauth_service.url, limits=httpx.Limits(max_connections=50)) as client:
        responses = await asyncio.gather(*(_refresh(client, oauth_service, first["refresh_token"]) for _ in range(50)))
    statuses = [r.status_code for r in responses]
    assert all(s < 500 for s in statuses), statuses
    assert statuses == [200] * 50
    children = [r.json()["refresh_token"] for r in responses]
    assert len(set(children)) == 50
    assert {_claims(c)["fam"] for c in children} == {_claims(first["refresh_token"])["fam"]}
    follow_up = await _refresh(http, oauth_service, children[-1])
    assert follow_up.status_code == 200
