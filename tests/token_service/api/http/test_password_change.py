"""A password change revokes the identity's earlier tokens (OWASP ASVS V3), on by default.

NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE: ``all`` (default: refresh and access tokens), ``refresh``
(refresh tokens only) or ``off``. Revoked tokens are disabled through the one revocation path,
so each gets a TOKEN_DISABLED feed event and sidecars drop the access tokens too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from sqlalchemy import select

from native_iam.admin.v1 import admin_pb2 as pb
from native_iam.admin.v1 import admin_pb2_grpc
from native_iam.oauth.v1 import feed_pb2, oauth_pb2, oauth_pb2_grpc
from tests.token_service.api.http.conftest import (
    PASSWORD,
    OAuthService,
    password_grant,
    refresh_grant,
    start_oauth_service,
)
from token_service.admin import ensure_identity
from token_service.admin import service as admin
from token_service.errors import CredentialsInvalid
from token_service.grants import create_token_with_password
from token_service.settings import Settings, SettingsError
from token_service.store.tables import revocations

NEW_PASSWORD = "n3w-secret-pass"
Refresh = oauth_pb2.RefreshTokenResponse
Check = oauth_pb2.CheckAccessResponse


@pytest.fixture
async def grpc_channel(oauth_service: OAuthService) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(oauth_service.app.grpc_target) as channel:
        yield channel


async def _grpc_login(stub: oauth_pb2_grpc.OAuthStub, password: str = PASSWORD) -> Any:
    return await stub.CreateTokenWithPassword(
        oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password=password, scopes=["orders:read"])
    )


async def _set_password_over_admin_grpc(service: OAuthService, channel: grpc.aio.Channel) -> None:
    await ensure_identity(service.core, "", "root", PASSWORD, ["iam:admin"])
    root = await create_token_with_password(
        service.core, namespace="", identity="root", password=PASSWORD, scopes=["iam:admin"]
    )
    await admin_pb2_grpc.IdentitiesStub(channel).SetPassword(
        pb.SetPasswordRequest(identity=pb.IdentityRef(name="alice"), password=NEW_PASSWORD),
        metadata=(("authorization", f"Bearer {root.access_token}"),),
    )


def _jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


async def test_password_change_revokes_earlier_tokens_on_both_transports(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_channel: grpc.aio.Channel
) -> None:
    """After SetPassword (admin gRPC): alice's earlier refresh tokens are refused over gRPC
    (TOKEN_DISABLED) and HTTP (invalid_grant), her earlier access token is TOKEN_DISABLED, each
    revoked token has a TOKEN_DISABLED feed event; a login with the new password works."""
    oauth = oauth_pb2_grpc.OAuthStub(grpc_channel)
    over_grpc = await _grpc_login(oauth)
    over_http = (await password_grant(http, oauth_service, "web", scope="orders:read")).json()
    await _set_password_over_admin_grpc(oauth_service, grpc_channel)

    refreshed = await oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=over_grpc.refresh_token))
    assert refreshed.status == Refresh.TOKEN_DISABLED
    response = await refresh_grant(http, oauth_service, "web", over_http["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    checked = await oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=over_grpc.access_token))
    assert checked.status == Check.TOKEN_DISABLED

    async with oauth_service.core.store.read() as conn:
        rows = (await conn.execute(select(revocations.c.jti, revocations.c.reason))).all()
    disabled = {jti for jti, reason in rows if reason == feed_pb2.TOKEN_DISABLED}
    earlier = {over_grpc.access_token, over_grpc.refresh_token, over_http["access_token"], over_http["refresh_token"]}
    assert {_jti(t) for t in earlier} <= disabled

    fresh = await _grpc_login(oauth, NEW_PASSWORD)
    again = await oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=fresh.refresh_token))
    assert again.status == Refresh.OK
    assert (await _grpc_login(oauth)).status == oauth_pb2.CreateTokenWithPasswordResponse.CREDENTIALS_INVALID


async def test_other_identities_keep_their_tokens(
    http: httpx.AsyncClient, oauth_service: OAuthService, grpc_channel: grpc.aio.Channel
) -> None:
    """Only the identity whose password changed loses its tokens."""
    bob = (await password_grant(http, oauth_service, "web", namespace="shop", username="bob")).json()
    await admin.set_password(oauth_service.core, "", "alice", NEW_PASSWORD)
    assert (await refresh_grant(http, oauth_service, "web", bob["refresh_token"])).status_code == 200


async def test_setting_the_same_password_again_revokes_nothing(
    http: httpx.AsyncClient, oauth_service: OAuthService
) -> None:
    """ensure_identity (start-up bootstrap, demo seeding) with the unchanged password is not a
    password change: restarting a replica must not log the admin out."""
    tokens = (await password_grant(http, oauth_service, "web", scope="orders:read")).json()
    await ensure_identity(oauth_service.core, "", "alice", PASSWORD, ())
    assert (await refresh_grant(http, oauth_service, "web", tokens["refresh_token"])).status_code == 200
    await ensure_identity(oauth_service.core, "", "alice", NEW_PASSWORD, ())
    assert (await refresh_grant(http, oauth_service, "web", tokens["refresh_token"])).status_code == 400


async def test_login_that_verified_the_old_password_during_the_change_is_refused(
    oauth_service: OAuthService,
) -> None:
    """Race: a password grant verifies the old password, the password changes before its tokens
    are stored. The grant re-checks the stored hash in its write transaction and is refused,
    so no token issued with the old password outlives the change."""
    core = oauth_service.core
    verify = core.passwords.verify

    async def verify_then_change(stored: str | None, password: str) -> bool:
        ok = await verify(stored, password)
        core.passwords.verify = verify  # type: ignore[method-assign]
        await admin.set_password(core, "", "alice", NEW_PASSWORD)
        return ok

    core.passwords.verify = verify_then_change  # type: ignore[method-assign]
    with pytest.raises(CredentialsInvalid):
        await create_token_with_password(core, namespace="", identity="alice", password=PASSWORD)


@pytest.fixture
async def service_with(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[OAuthService]:
    service = await start_oauth_service(f"sqlite:///{tmp_path / 'oauth.db'}", revoke_on_password_change=request.param)
    yield service
    await service.app.stop(0)


@pytest.mark.parametrize("service_with", ["refresh"], indirect=True)
async def test_refresh_only_keeps_access_tokens(service_with: OAuthService) -> None:
    """NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE=refresh: refresh tokens die, access tokens live on."""
    async with httpx.AsyncClient(base_url=service_with.url) as http:
        tokens = (await password_grant(http, service_with, "web", scope="orders:read")).json()
        await admin.set_password(service_with.core, "", "alice", NEW_PASSWORD)
        assert (await refresh_grant(http, service_with, "web", tokens["refresh_token"])).status_code == 400
        introspected = await http.post(
            "/oauth2/introspect", data={"token": tokens["access_token"]}, headers=service_with.basic("web")
        )
        assert introspected.json()["active"] is True


@pytest.mark.parametrize("service_with", ["off"], indirect=True)
async def test_off_keeps_every_token(service_with: OAuthService) -> None:
    """NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE=off: the earlier behaviour, tokens stay valid."""
    async with httpx.AsyncClient(base_url=service_with.url) as http:
        tokens = (await password_grant(http, service_with, "web", scope="orders:read")).json()
        await admin.set_password(service_with.core, "", "alice", NEW_PASSWORD)
        assert (await refresh_grant(http, service_with, "web", tokens["refresh_token"])).status_code == 200


def test_setting_is_read_and_checked() -> None:
    """The variable defaults to all, accepts all/refresh/off and names itself when wrong."""
    assert Settings.from_env({}).revoke_on_password_change == "all"
    env = {"NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE": "refresh"}
    assert Settings.from_env(env).revoke_on_password_change == "refresh"
    with pytest.raises(SettingsError, match="NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE"):
        Settings.from_env({"NATIVE_IAM_REVOKE_ON_PASSWORD_CHANGE": "yes"})


@pytest.fixture
async def any_db_service(db_url: str) -> AsyncIterator[OAuthService]:
    """The OAuth service on SQLite and on a real PostgreSQL (row locks decide the race there)."""
    service = await start_oauth_service(db_url)
    yield service
    await service.app.stop(0)


async def test_password_change_racing_refreshes_leaves_no_live_token(any_db_service: OAuthService) -> None:
    """30 concurrent refreshes (rotating and not) race a password change: no 5xx, no deadlock,
    and afterwards every refresh token any of them returned is refused: each was either
    issued before the change (and revoked by it) or the refresh was refused."""
    service = any_db_service
    async with httpx.AsyncClient(base_url=service.url, limits=httpx.Limits(max_connections=30)) as http:
        rotating = (await password_grant(http, service, "rotating", scope="orders:read")).json()["refresh_token"]
        plain = (await password_grant(http, service, "web", scope="orders:read")).json()["refresh_token"]
        calls = [refresh_grant(http, service, "rotating", rotating) for _ in range(15)]
        calls += [refresh_grant(http, service, "web", plain) for _ in range(15)]
        *responses, _ = await asyncio.gather(*calls, admin.set_password(service.core, "", "alice", NEW_PASSWORD))
        assert {r.status_code for r in responses} <= {200, 400}
        issued = [r.json() for r in responses if r.status_code == 200]
        for body in issued:
            introspected = await http.post(
                "/oauth2/introspect", data={"token": body["access_token"]}, headers=service.basic("web")
            )
            assert introspected.json() == {"active": False}
        for token in [b["refresh_token"] for b in issued if "refresh_token" in b] + [rotating, plain]:
            client = str(jwt.decode(token, options={"verify_signature": False})["client_id"])
            assert (await refresh_grant(http, service, client, token)).status_code == 400
