"""Hostile tokens against the token service's CheckAccess (gRPC, real server on 127.0.0.1).

The same catalogue as the sidecar faces (tests/reliability/_forge.py), forged with the service's
own signing key: each is refused with a seed status (gRPC OK) — or INVALID_ARGUMENT when the
request itself is malformed (oversized, empty) — and never INTERNAL.
"""

from __future__ import annotations

import grpc
import pytest

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.conftest import add_identity
from token_service.app import TokenServiceApp
from token_service.grants import create_token_with_password

from ._forge import CASES, Case, Signer

Status = oauth_pb2.CheckAccessResponse


@pytest.fixture
async def signer(service: TokenServiceApp) -> Signer:
    await add_identity(service.core, "alice", policy=("orders:read",), namespace="shop")
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
