"""A sidecar fed by the real token service agrees with CheckAccess whatever happens to a name (F5).

Delete identity X, create X again, disable and enable the new X: the old X's tokens must stay dead
at the sidecar (TOKEN_NOT_FOUND, as CheckAccess says), while the new X's tokens follow the new X's
state. The sidecar once kept only the newest identity event per name, so the "lifted" event of
the enable erased the deletion's cut-off and the old tokens passed again.

The token service (gRPC; SQLite and PostgreSQL) and the sidecar (its feed client, keys and OAuth
facade) run in this process on 127.0.0.1; each step waits until the sidecar has applied the feed
up to the token service's head, then compares the two CheckAccess answers for every token. A
second sidecar that starts at the end (snapshot instead of live events) must agree as well.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import jwt
import pytest

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from sidecar.server import Sidecar
from tests.sidecar._stack import in_process_sidecar
from tests.token_service.conftest import add_identity, db_url
from token_service.admin import service as admin
from token_service.app import TokenServiceApp
from token_service.grants import create_token_with_password
from token_service.testing import running_token_service

__all__ = ["db_url"]

Check = oauth_pb2.CheckAccessResponse
PASSWORD = "x-pass-123456"


async def _caught_up(app: TokenServiceApp, sidecar: Sidecar) -> None:
    """Until the sidecar has applied every event the token service has written."""
    assert app.feed is not None
    deadline = time.monotonic() + 10
    while True:
        await app.feed._read_new()  # the head as of now, not as of the next poll
        if sidecar.revocations.synced and sidecar.revocations.cursor >= app.feed.head:
            return
        assert time.monotonic() < deadline, "the sidecar never caught up with the feed"
        await asyncio.sleep(0.02)


async def _status(target: str, token: str) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        request = oauth_pb2.CheckAccessRequest(access_token=token, scopes=["orders:read"])
        return (await oauth_pb2_grpc.OAuthStub(channel).CheckAccess(request, timeout=5)).status


async def _agree(app: TokenServiceApp, sidecar: Sidecar, step: str, tokens: dict[str, str], **expected: int) -> None:
    """Each token's CheckAccess status at the token service and at the sidecar is the expected one."""
    await _caught_up(app, sidecar)
    seen = {
        name: (
            Check.Status.Name(await _status(app.grpc_target, tokens[name])),
            Check.Status.Name(await _status(f"127.0.0.1:{sidecar.oauth_port}", tokens[name])),
        )
        for name in expected
    }
    wanted = {name: (Check.Status.Name(status),) * 2 for name, status in expected.items()}
    assert seen == wanted, f"after {step}: (token service, sidecar) per token"


async def _token(app: TokenServiceApp) -> str:
    return (await create_token_with_password(app.core, namespace="", identity="x", password=PASSWORD)).access_token


async def _next_second() -> None:
    """Cut-offs are whole seconds: a token of the new X must be issued after the old X's cut-off."""
    await asyncio.sleep(1.05 - time.time() % 1)


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[TokenServiceApp]:
    async with running_token_service(db_url) as app:
        yield app


async def test_sidecar_and_check_access_agree_across_delete_create_disable_enable(app: TokenServiceApp) -> None:
    await add_identity(app.core, "x", PASSWORD, ("orders:read", "orders:write"))
    tokens = {"old": await _token(app), "old_disabled": await _token(app)}
    jti = jwt.decode(tokens["old_disabled"], options={"verify_signature": False})["jti"]
    await admin.set_token_active(app.core, jti, False)
    async with in_process_sidecar(app.grpc_target, app.settings.issuer) as sidecar:
        await _agree(app, sidecar, "create", tokens, old=Check.OK, old_disabled=Check.TOKEN_DISABLED)

        await admin.delete_identity(app.core, "", "x")
        gone = {"old": Check.TOKEN_NOT_FOUND, "old_disabled": Check.TOKEN_NOT_FOUND}
        await _agree(app, sidecar, "delete", tokens, **gone)

        # At once, within the deletion's second: the new X's first tokens must not fall under its cut-off.
        await add_identity(app.core, "x", PASSWORD, ("orders:read", "orders:write"))
        tokens["new"] = await _token(app)
        await _agree(app, sidecar, "re-create", tokens, **gone, new=Check.OK)

        await admin.set_identity_active(app.core, "", "x", False)
        await _agree(app, sidecar, "disable", tokens, **gone, new=Check.TOKEN_DISABLED)

        await admin.set_identity_active(app.core, "", "x", True)
        await _agree(app, sidecar, "enable", tokens, **gone, new=Check.OK)

        await admin.set_policy(app.core, "", "x", ("orders:read",))  # narrowed: the new X's tokens are cut
        await _next_second()
        tokens["newest"] = await _token(app)
        after_policy = {**gone, "new": Check.TOKEN_DISABLED, "newest": Check.OK}
        await _agree(app, sidecar, "policy narrowed", tokens, **after_policy)

        await admin.set_identity_active(app.core, "", "x", False)
        await admin.set_identity_active(app.core, "", "x", True)
        await _agree(app, sidecar, "disable + enable after the policy change", tokens, **after_policy)

    # The snapshot path: a sidecar that starts now must hold the same effective set.
    async with in_process_sidecar(app.grpc_target, app.settings.issuer) as fresh:
        await _agree(app, fresh, "snapshot", tokens, **after_policy)
