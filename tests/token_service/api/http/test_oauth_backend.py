"""token_service/api/http/backend.py: the HTTP transport's calls into the core."""

from __future__ import annotations

import httpx
import jwt
from sqlalchemy import select

from native_iam.oauth.v1 import feed_pb2
from tests.token_service.api.http.conftest import OAuthService, password_grant
from token_service import clients
from token_service.api.http.backend import client_context
from token_service.store.tables import revocations


def test_client_context_carries_the_client_settings() -> None:
    """ClientContext mirrors the client: id, audiences, TTLs, refresh allowed, rotation, grace."""
    client, _ = clients.new_client(
        "c",
        server_key=b"k" * 32,
        grant_types=["password"],
        audiences=["a"],
        access_token_ttl_s=60,
        refresh_token_ttl_s=600,
        rotate_refresh_tokens=True,
    )
    context = client_context(client, reuse_grace_s=2.5)
    assert (context.client_id, context.audiences, context.access_token_ttl_s, context.refresh_token_ttl_s) == (
        "c",
        ("a",),
        60,
        600,
    )
    assert not context.issue_refresh_token and context.rotate_refresh_tokens and context.reuse_grace_s == 2.5


async def test_revocation_publishes_client_revoked_events(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """Revoking a refresh token writes one CLIENT_REVOKED feed event per token of its family."""
    tokens = (await password_grant(http, oauth_service, scope="orders:read")).json()
    await http.post("/oauth2/revoke", data={"token": tokens["refresh_token"]}, headers=oauth_service.basic("web"))
    async with oauth_service.core.store.read() as conn:
        rows = (await conn.execute(select(revocations.c.jti, revocations.c.reason))).all()
    revoked = {jti for jti, reason in rows if reason == feed_pb2.CLIENT_REVOKED}
    jtis = {
        jwt.decode(tokens[k], options={"verify_signature": False})["jti"] for k in ("access_token", "refresh_token")
    }
    assert revoked == jtis and len(jtis) == 2


async def test_per_client_refresh_ttl(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A client's refresh_token_ttl_s sets the refresh token's lifetime."""
    await oauth_service.register("short", refresh_token_ttl_s=600)
    refresh = (await password_grant(http, oauth_service, "short", scope="orders:read")).json()["refresh_token"]
    claims = jwt.decode(refresh, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600
