"""A deleted identity's tokens never come back attached to a later identity (F1).

Tokens reference their identity by row id and by the identity's random ``uid``. SQLite handed out
the highest deleted ``INTEGER PRIMARY KEY`` again, so a deleted identity's tokens passed
CheckAccess under the next identity created, its refresh token returned access tokens with the
new identity's ``sub``, and an ex-admin's token was admin again. Run on SQLite and PostgreSQL,
over the gRPC API, the HTTP token endpoint and the admin API; and the migration is run on a
database the old schema created, with an id already reused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from sqlalchemy import select

from native_iam.admin.v1 import admin_pb2 as admin_pb
from native_iam.admin.v1 import admin_pb2_grpc
from native_iam.oauth.v1 import oauth_pb2 as pb
from native_iam.oauth.v1 import oauth_pb2_grpc
from tests.token_service.api.http.conftest import PASSWORD, OAuthService, start_oauth_service
from token_service.access import check_access
from token_service.admin import service as admin
from token_service.errors import IdentityNotFound, TokenNotFound
from token_service.grants import client_context, refresh_access_token
from token_service.store import Store
from token_service.store.tables import identities, tokens

ADMIN_POLICY = ("iam:admin", "orders:read")


@pytest.fixture
async def oauth_app(db_url: str) -> AsyncIterator[OAuthService]:
    """The HTTP + gRPC token service on this backend, with ``mallory`` (an admin) the newest identity."""
    service = await start_oauth_service(db_url)
    await admin.ensure_identity(service.core, "", "mallory", PASSWORD, ADMIN_POLICY)
    yield service
    await service.app.stop(0)


async def _identity_id(service: OAuthService, name: str) -> int:
    async with service.core.store.read() as conn:
        return int((await conn.execute(select(identities.c.id).where(identities.c.name == name))).scalar_one())


async def test_deleted_identitys_tokens_do_not_pass_for_the_next_identity(oauth_app: OAuthService) -> None:
    """Delete mallory (the highest id), create carol: mallory's access token, gRPC refresh token,
    HTTP refresh token and admin rights are all gone, and carol got a new id."""
    async with grpc.aio.insecure_channel(oauth_app.app.grpc_target) as channel:
        oauth = oauth_pb2_grpc.OAuthStub(channel)
        issued = await oauth.CreateTokenWithPassword(
            pb.CreateTokenWithPasswordRequest(identity="mallory", password=PASSWORD, scopes=list(ADMIN_POLICY))
        )
        assert issued.status == pb.CreateTokenWithPasswordResponse.OK
        async with httpx.AsyncClient(base_url=oauth_app.url) as http:
            form = {"grant_type": "password", "username": "mallory", "password": PASSWORD, "scope": "orders:read"}
            http_tokens = (await http.post("/oauth2/token", data=form, headers=oauth_app.basic("web"))).json()
            mallory_id = await _identity_id(oauth_app, "mallory")

            await admin.delete_identity(oauth_app.core, "", "mallory")
            await admin.ensure_identity(oauth_app.core, "", "carol", PASSWORD, ADMIN_POLICY)
            assert await _identity_id(oauth_app, "carol") > mallory_id  # never a reused id

            checked = await oauth.CheckAccess(
                pb.CheckAccessRequest(access_token=issued.access_token, scopes=["iam:admin"])
            )
            assert checked.status == pb.CheckAccessResponse.TOKEN_NOT_FOUND
            refreshed = await oauth.RefreshToken(pb.RefreshTokenRequest(refresh_token=issued.refresh_token))
            assert refreshed.status == pb.RefreshTokenResponse.IDENTITY_NOT_FOUND
            assert not refreshed.access_token
            response = await http.post(
                "/oauth2/token",
                data={"grant_type": "refresh_token", "refresh_token": http_tokens["refresh_token"]},
                headers=oauth_app.basic("web"),
            )
            assert response.status_code == 400 and response.json()["error"] == "invalid_grant"

        identities_api = admin_pb2_grpc.IdentitiesStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await identities_api.ListIdentities(
                admin_pb.ListIdentitiesRequest(), metadata=[("authorization", f"Bearer {issued.access_token}")]
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_token_is_bound_to_its_identitys_uid_not_only_its_id(oauth_app: OAuthService) -> None:
    """Even if an id came back (a restored table, a reset sequence), a token whose identity uid
    differs from the row's is another identity's token: CheckAccess TOKEN_NOT_FOUND, refresh
    IDENTITY_NOT_FOUND, introspection inactive."""
    core = oauth_app.core
    async with httpx.AsyncClient(base_url=oauth_app.url) as http:
        form = {"grant_type": "password", "username": "mallory", "password": PASSWORD, "scope": "orders:read"}
        issued = (await http.post("/oauth2/token", data=form, headers=oauth_app.basic("web"))).json()
        async with core.store.write() as conn:
            await conn.execute(identities.update().where(identities.c.name == "mallory").values(uid="0" * 32))
        core.checks.tail_read(1)  # what a feed event does: cached answers are void
        with pytest.raises(TokenNotFound):
            await check_access(core, access_token=issued["access_token"])
        web = await core.clients.get_client("web")
        assert web is not None
        with pytest.raises(IdentityNotFound):  # as the token endpoint calls it for "web" (F3 binding)
            await refresh_access_token(
                core, refresh_token=issued["refresh_token"], client=client_context(web, core.settings.refresh_grace_s)
            )
        for token in (issued["access_token"], issued["refresh_token"]):
            response = await http.post("/oauth2/introspect", data={"token": token}, headers=oauth_app.basic("web"))
            assert response.json() == {"active": False}


async def test_migration_of_an_old_schema_database(db_url: str) -> None:
    """A database created by the old schema (revisions 0001 + 0100) is migrated: rows, passwords
    and policies survive, the next id is above every id a token ever referenced, and tokens that
    an earlier (deleted) identity left on a reused id stay dead."""
    from alembic import command
    from alembic.config import Config

    from token_service.store.db import MIGRATIONS

    store = Store(db_url)

    def upgrade_to_old_schema(sync_conn: object) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = sync_conn
        command.upgrade(config, "0001")
        command.upgrade(config, "0100")

    async with store.engine.begin() as conn:
        await conn.run_sync(upgrade_to_old_schema)
    async with store.engine.begin() as conn:
        for statement in _OLD_ROWS:
            await conn.exec_driver_sql(statement)
        if not store.is_sqlite:  # the sequence had handed out 1, 2 and 3
            await conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('identities', 'id'), 3)")
    await store.migrate()

    async with store.read() as conn:
        rows = {r.name: r for r in (await conn.execute(select(identities))).all()}
        token_uids = dict((await conn.execute(select(tokens.c.jti, tokens.c.identity_uid))).all())
    assert set(rows) == {"alice", "carol"}
    assert all(len(r.uid) == 32 for r in rows.values()) and rows["alice"].uid != rows["carol"].uid
    assert token_uids == {
        "alice-old": rows["alice"].uid,
        "mallory-old": None,
        "carol-new": rows["carol"].uid,
        "gone-3": None,
    }

    assert await _dependent_rows(store) == {"passwords": 2, "policies": 2}  # the rebuild kept them
    await store.close()

    # The next identity gets an id above every id a token referenced (deleted eve's 3 included).
    from token_service.core import Core
    from token_service.testing import settings_for_tests

    core = Core.build(settings_for_tests(db_url))
    await core.start()
    try:
        await admin.create_identity(core, "", "dave")
        async with core.store.read() as conn:
            dave = (await conn.execute(select(identities.c.id).where(identities.c.name == "dave"))).scalar_one()
        assert dave > 3
    finally:
        await core.close()


# The old schema's history: alice got id 1 and mallory id 2 ("mallory-old"); mallory was deleted and
# carol got id 2 again ("carol-new"); eve got id 3 ("gone-3") and was deleted, so id 3 was next.
_OLD_ROWS = (
    "INSERT INTO identities (id, namespace, name, active, created_at, updated_at)"
    " VALUES (1, '', 'alice', true, 100, 100), (2, '', 'carol', true, 500, 500)",
    "INSERT INTO passwords (identity_id, hash, enabled, updated_at) VALUES (1, 'h1', true, 100), (2, 'h2', true, 500)",
    "INSERT INTO policies (identity_id, grants, updated_at) VALUES (1, 'a:read', 100), (2, 'iam:admin', 500)",
    "INSERT INTO tokens (jti, usage, identity_id, namespace, identity, client_id, scopes, kid, created_at, expires_at)"
    " VALUES ('alice-old', 'access', 1, '', 'alice', 'c', 'a:read', 'k', 200, 2000000000),"
    " ('mallory-old', 'access', 2, '', 'mallory', 'c', 'iam:admin', 'k', 300, 2000000000),"
    " ('carol-new', 'access', 2, '', 'carol', 'c', 'iam:admin', 'k', 600, 2000000000),"
    " ('gone-3', 'access', 3, '', 'eve', 'c', 'iam:admin', 'k', 700, 2000000000)",
)


async def _dependent_rows(store: Store) -> dict[str, int]:
    async with store.read() as conn:
        passwords = (await conn.exec_driver_sql("SELECT count(*) FROM passwords")).scalar_one()
        policies = (await conn.exec_driver_sql("SELECT count(*) FROM policies")).scalar_one()
    return {"passwords": int(passwords), "policies": int(policies)}
