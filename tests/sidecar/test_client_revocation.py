"""A sidecar fed by the real token service agrees with CheckAccess on OAuth client tokens (issue 13).

Disable, enable, delete and re-create an OAuth client, and disable an identity that has the
client's name: the client's own tokens (client_credentials) and the identity tokens it obtained
follow the client, at the token service (its database) and at the sidecar (the feed's CLIENT
events) alike; an identity never touches a client's token of the same name or the reverse. Same
harness as test_identity_incarnations.py (token service on SQLite and PostgreSQL, an in-process
sidecar, each step after the sidecar caught up with the feed); a fresh sidecar (snapshot) agrees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from native_iam.oauth.v1 import oauth_pb2
from tests.sidecar._stack import in_process_sidecar
from tests.sidecar.test_identity_incarnations import _agree
from tests.token_service.conftest import add_client, add_identity, db_url
from token_service.admin import service as admin
from token_service.admin.clients import delete_client, set_client_enabled
from token_service.app import TokenServiceApp
from token_service.grants import client_context, client_credentials_grant, create_token_with_password
from token_service.testing import running_token_service

__all__ = ["db_url"]

Check = oauth_pb2.CheckAccessResponse
PASSWORD = "x-pass-123456"
GRANTS = ("client_credentials", "password")


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[TokenServiceApp]:
    async with running_token_service(db_url) as app:
        yield app


async def _register(app: TokenServiceApp, client_id: str) -> None:
    await add_client(app.core, client_id, grant_types=GRANTS, scopes=("orders:read",))


async def _machine(app: TokenServiceApp) -> str:
    client = client_context(await app.core.clients.get("svc"), 5.0)
    return (await client_credentials_grant(app.core, client=client)).access_token


async def _person(app: TokenServiceApp, identity: str, client_id: str) -> str:
    client = client_context(await app.core.clients.get(client_id), 5.0)
    issued = await create_token_with_password(
        app.core, namespace="", identity=identity, password=PASSWORD, scopes=["orders:read"], client=client
    )
    return issued.access_token


async def test_sidecar_and_check_access_agree_on_client_disable_delete_recreate(app: TokenServiceApp) -> None:
    await _register(app, "svc")
    await _register(app, "web")
    await add_identity(app.core, "alice", PASSWORD, ("orders:read",))
    await add_identity(app.core, "svc", PASSWORD, ("orders:read",))  # an identity named like the client
    tokens = {
        "machine": await _machine(app),
        "alice_via_svc": await _person(app, "alice", "svc"),
        "svc_person": await _person(app, "svc", "web"),
    }
    ok = {name: Check.OK for name in tokens}
    async with in_process_sidecar(app.grpc_target, app.settings.issuer) as sidecar:
        await _agree(app, sidecar, "issued", tokens, **ok)

        await set_client_enabled(app.core, "svc", False)
        disabled = {"machine": Check.TOKEN_DISABLED, "alice_via_svc": Check.TOKEN_DISABLED}
        await _agree(app, sidecar, "client disabled", tokens, **{**ok, **disabled})

        await set_client_enabled(app.core, "svc", True)
        await _agree(app, sidecar, "client enabled", tokens, **ok)

        await admin.set_identity_active(app.core, "", "svc", False)  # the identity, not the client
        await _agree(app, sidecar, "identity svc disabled", tokens, **{**ok, "svc_person": Check.TOKEN_DISABLED})
        await admin.set_identity_active(app.core, "", "svc", True)

        await delete_client(app.core, "svc")
        gone = {"machine": Check.TOKEN_NOT_FOUND, "alice_via_svc": Check.TOKEN_NOT_FOUND}
        await _agree(app, sidecar, "client deleted", tokens, **{**ok, **gone})

        # At once, within the deletion's second: the old tokens stay dead, the new client's pass.
        await _register(app, "svc")
        tokens["machine2"] = await _machine(app)
        after = {**ok, **gone, "machine2": Check.OK}
        await _agree(app, sidecar, "client re-created", tokens, **after)

        await set_client_enabled(app.core, "svc", False)
        await _agree(app, sidecar, "new client disabled", tokens, **{**after, "machine2": Check.TOKEN_DISABLED})
        await set_client_enabled(app.core, "svc", True)
        await _agree(app, sidecar, "new client enabled", tokens, **after)

    async with in_process_sidecar(app.grpc_target, app.settings.issuer) as fresh:
        await _agree(app, fresh, "snapshot", tokens, **after)
