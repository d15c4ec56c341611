"""Hostile tokens against the token service's CheckAccess (gRPC, real server on 127.0.0.1).

The same catalogue as the sidecar faces (tests/reliability/_forge.py), forged with the service's
own signing key: each is refused with a seed status (gRPC OK) — or INVALID_ARGUMENT when the
request itself is malformed (oversized, empty) — and never INTERNAL.

Also the service's own time window at its edges (TokenCodec.verify and CheckAccess): no leeway,
exactly at exp is expired, nbf is inclusive.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
import jwt
import pytest
import pytest_asyncio

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.conftest import add_identity
from token_service.app import TokenServiceApp
from token_service.errors import TokenExpired
from token_service.grants import create_token_with_password
from token_service.testing import running_token_service
from token_service.tokens import new_jti

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


# ---- exp / nbf edges: the token service applies no leeway (tokens.py: now >= exp is expired,
# now < nbf is not valid yet); sidecars add NATIVE_IAM_LEEWAY_S on top, tested in
# test_hostile_sidecar.py.

T0 = 2_000_000_000  # a fixed issuing instant (unix s), far from the real clock


@pytest.mark.parametrize(
    ("at", "outcome"),
    [
        (T0 - 0.001, "not valid yet"),
        (T0, None),
        (T0 + 600 - 1, None),
        (T0 + 600 - 0.001, None),
        (T0 + 600, "has expired"),
        (T0 + 600.001, "has expired"),
    ],
    ids=["nbf-1ms", "nbf", "exp-1s", "exp-1ms", "exp", "exp+1ms"],
)
async def test_codec_time_window_edges(service: TokenServiceApp, at: float, outcome: str | None) -> None:
    """TokenCodec.verify accepts from nbf (inclusive) to exp (exclusive), with no leeway: exactly
    at exp is expired, 1 ms earlier is valid; 1 ms before nbf is not valid yet."""
    codec = service.core.codec
    token, _ = codec.sign(
        usage="access_token",
        jti=new_jti(),
        sub="alice",
        namespace="shop",
        scopes_=["orders:read"],
        client_id="native-iam",
        audience=[service.settings.audience],
        iat=T0,
        exp=T0 + 600,
    )
    if outcome is None:
        assert codec.verify(token, at).exp == T0 + 600
    else:
        with pytest.raises(TokenExpired, match=outcome):
            codec.verify(token, at)


async def test_codec_refuses_nbf_later_than_iat_until_nbf(service: TokenServiceApp, signer: Signer) -> None:
    """A token whose nbf lies after its iat (signed with the service's own key) is refused until
    exactly nbf, then accepted: nbf is enforced on its own, not derived from iat."""
    token = signer.sign(signer.claims(iat=T0, nbf=T0 + 100, exp=T0 + 600))
    for at in (T0, T0 + 99, T0 + 99.999):
        with pytest.raises(TokenExpired, match="not valid yet"):
            service.core.codec.verify(token, at)
    assert service.core.codec.verify(token, T0 + 100).nbf == T0 + 100


async def test_check_access_time_window_edges(
    service: TokenServiceApp, oauth: oauth_pb2_grpc.OAuthStub, signer: Signer
) -> None:
    """CheckAccess over gRPC on a token the service issued at T (exp T + TTL), with the service's
    clock set: T − 1 ms → TOKEN_EXPIRED (not valid yet); T → OK; exp − 1 s and exp − 1 ms → OK;
    exactly exp → TOKEN_EXPIRED although the answer cache holds the token (it stops at exp too);
    a forged nbf 2 s ahead of the real clock → TOKEN_EXPIRED (not valid yet)."""
    core = service.core
    real_clock = core.clock
    try:
        core.clock = lambda: float(T0)
        issued = await create_token_with_password(
            core, namespace="shop", identity="alice", password="s3cret-pass", scopes=["orders:read"]
        )
        exp = jwt.decode(issued.access_token, options={"verify_signature": False})["exp"]
        assert exp > T0
        answers = []
        for at in (T0 - 0.001, T0, exp - 1, exp - 0.001, exp, exp - 0.001):
            core.clock = lambda at=at: at
            request = oauth_pb2.CheckAccessRequest(access_token=issued.access_token, scopes=["orders:read"])
            response = await oauth.CheckAccess(request)
            answers.append((Status.Status.Name(response.status), response.message))
    finally:
        core.clock = real_clock
    names = [a[0] for a in answers]
    assert names == ["TOKEN_EXPIRED", "OK", "OK", "OK", "TOKEN_EXPIRED", "OK"], answers
    assert "not valid yet" in answers[0][1] and "expired" in answers[4][1], answers
    # nbf in the future under the real clock (the service's own key, so only the time is wrong).
    ahead = signer.sign(signer.claims(nbf=int(time.time()) + 2))
    response = await oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=ahead, scopes=["orders:read"]))
    assert response.status == Status.TOKEN_EXPIRED and "not valid yet" in response.message, response
