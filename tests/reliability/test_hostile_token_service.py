"""Hostile tokens against the token service's CheckAccess (gRPC, real server on 127.0.0.1).

The same catalogue as the sidecar faces (tests/reliability/_forge.py), forged with the service's
own signing key: each is refused with a seed status (gRPC OK) — or INVALID_ARGUMENT when the
request itself is malformed (oversized, empty) — and never INTERNAL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.conftest import add_identity
from token_service.app import TokenServiceApp
from token_service.grants import create_token_with_password
from token_service.testing import running_token_service

from ._forge import CASES, Case, Signer

Status = oauth_pb2.CheckAccessResponse
# One server for the whole catalogue: the cases only read, and a start per case would cost 0.3 s each.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TokenServiceApp]:
    async with running_token_service(f"sqlite:///{tmp_path_factory.mktemp('hostile')}/native-iam.db") as app:
        await add_identity(app.core, "alice", policy=("orders:read",), namespace="shop")
        yield app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def oauth(service: TokenServiceApp) -> AsyncIterator[oauth_pb2_grpc.OAuthStub]:
    async with grpc.aio.insecure_channel(service.grpc_target) as channel:
        yield oauth_pb2_grpc.OAuthStub(channel)


@pytest.fixture(scope="module")
def signer(service: TokenServiceApp) -> Signer:
    key = service.core.keys.signing_key()
    s = service.settings
    return Signer(key.private, key.kid, s.issuer, s.audience, alg=key.alg, extra={"client_id": s.grpc_client_id})


def _token(header_value: str) -> str:
    scheme, _, rest = header_value.partition(" ")
    return rest if scheme == "Bearer" else header_value


async def test_control_issued_token_is_ok(
    service: TokenServiceApp, oauth: oauth_pb2_grpc.OAuthStub, signer: Signer
) -> None:
    """A token the service issued passes CheckAccess for orders:read: the refusals below are the input's doing."""
    issued = await create_token_with_password(
        service.core, namespace="shop", identity="alice", password="s3cret-pass", scopes=["orders:read"]
    )
    response = await oauth.CheckAccess(
        oauth_pb2.CheckAccessRequest(access_token=issued.access_token, scopes=["orders:read"])
    )
    assert response.status == Status.OK


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_hostile_token_is_refused_never_internal(
    oauth: oauth_pb2_grpc.OAuthStub, signer: Signer, case: Case
) -> None:
    """CheckAccess refuses a hostile token with a seed status, or INVALID_ARGUMENT for a malformed request."""
    token = _token(case.build(signer))
    try:
        response = await oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=token, scopes=["orders:read"]))
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (exc.code(), exc.details())
        assert case.oversized or not token.strip(), f"{case.name}: INVALID_ARGUMENT for a well-formed request"
        return
    assert response.status not in (Status.OK, Status.STATUS_UNSPECIFIED), response
    assert token not in response.message
