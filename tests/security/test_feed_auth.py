"""The revocation feed names identities and jtis: WatchRevocations requires the feed token.

Anonymous, wrong, repeated or non-bearer credentials are UNAUTHENTICATED before anything is
looked at (not one message, nothing about the feed in the error), on a token service with or
without configured tokens; GetJwks stays public; two configured tokens (a rotation) are both
accepted. End to end: a sidecar with a wrong token never becomes ready and says why, one with the
right token syncs, and neither log holds the token.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from native_iam.claims import FEED_SCOPE
from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc, oauth_pb2, oauth_pb2_grpc
from tests.reliability._services import Sidecar, TokenService
from tests.sidecar._token_endpoint import TokenEndpoint
from tests.token_service.conftest import add_identity
from token_service.admin import service as admin
from token_service.app import TokenServiceApp
from token_service.settings import Settings, SettingsError
from token_service.testing import FEED_METADATA, TEST_FEED_TOKEN, running_token_service

NEXT_TOKEN = "next-feed-token-fedcba9876543210fedcba9876543210"
WRONG = "wrong-feed-token-0000000000000000000000000000000000"


@contextlib.asynccontextmanager
async def _feed(sqlite_url: str, tokens: tuple[str, ...]) -> AsyncIterator[feed_pb2_grpc.FeedStub]:
    """A token service accepting ``tokens`` with one revoked identity in its feed, and a Feed stub."""
    async with running_token_service(sqlite_url, feed_tokens=tokens) as app:
        await _revoke_someone(app)
        async with grpc.aio.insecure_channel(app.grpc_target) as channel:
            yield feed_pb2_grpc.FeedStub(channel)


async def _revoke_someone(app: TokenServiceApp) -> None:
    await add_identity(app.core, "secret-agent", "pw-123456", ("a:b",), namespace="spies")
    await admin.set_identity_active(app.core, "spies", "secret-agent", False)
    await app.feed._read_new()  # type: ignore[union-attr]  # the hub's head includes it now


async def _watch(
    stub: feed_pb2_grpc.FeedStub, metadata: tuple[tuple[str, str], ...]
) -> feed_pb2.WatchRevocationsResponse:
    stream = stub.WatchRevocations(feed_pb2.WatchRevocationsRequest(cursor=0, subscriber="probe"), metadata=metadata)
    return await anext(aiter(stream))


REFUSED_METADATA = {
    "anonymous": (),
    "wrong token": (("authorization", f"Bearer {WRONG}"),),
    "basic scheme": (("authorization", f"Basic {TEST_FEED_TOKEN}"),),
    "bare token": (("authorization", TEST_FEED_TOKEN),),
    "empty bearer": (("authorization", "Bearer "),),
    "two entries": (FEED_METADATA[0], ("authorization", f"Bearer {WRONG}")),
    "token prefix": (("authorization", f"Bearer {TEST_FEED_TOKEN[:-1]}"),),
}


@pytest.mark.parametrize("case", sorted(REFUSED_METADATA))
async def test_watch_without_the_feed_token_is_unauthenticated(sqlite_url: str, case: str) -> None:
    """No message, UNAUTHENTICATED, and the error names nothing of the feed."""
    async with _feed(sqlite_url, (TEST_FEED_TOKEN,)) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _watch(stub, REFUSED_METADATA[case])
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        details = refused.value.details() or ""
        assert "secret-agent" not in details and "spies" not in details and TEST_FEED_TOKEN not in details
        # GetJwks is public: the same caller gets the keys.
        assert '"keys"' in (await stub.GetJwks(feed_pb2.GetJwksRequest())).jwks_json


async def test_feed_token_opens_the_stream_and_a_rotation_accepts_both(sqlite_url: str) -> None:
    """With the old and the new token configured, either one syncs; the feed carries the event."""
    async with _feed(sqlite_url, (TEST_FEED_TOKEN, NEXT_TOKEN)) as stub:
        for token in (TEST_FEED_TOKEN, NEXT_TOKEN):
            first = await _watch(stub, (("authorization", f"bearer {token}"),))
            assert first.synced and {r.identity for r in first.revocations} == {"secret-agent"}


async def test_without_configured_tokens_the_feed_refuses_everyone(sqlite_url: str) -> None:
    """NATIVE_IAM_FEED_TOKEN unset: the feed is closed, not open."""
    async with _feed(sqlite_url, ()) as stub:
        for metadata in ((), FEED_METADATA):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _watch(stub, metadata)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("value", ["short", "x" * 31, "a" * 40 + " short", "é" * 40])
def test_weak_feed_tokens_are_refused_at_start_up(value: str) -> None:
    """Each token must be at least 32 visible ASCII characters; the error names the variable, not the value."""
    with pytest.raises(SettingsError, match="NATIVE_IAM_FEED_TOKEN") as refused:
        Settings.from_env({"NATIVE_IAM_FEED_TOKEN": value})
    assert value not in str(refused.value)


def test_feed_tokens_are_read_from_a_file_and_never_printed(tmp_path: Path) -> None:
    """NATIVE_IAM_FEED_TOKEN_FILE (a mounted Secret), several tokens; repr masks them (both roles)."""
    from sidecar.settings import from_env as sidecar_from_env

    (tmp_path / "token").write_text(f"{TEST_FEED_TOKEN} {NEXT_TOKEN}\n")
    settings = Settings.from_env({"NATIVE_IAM_FEED_TOKEN_FILE": str(tmp_path / "token")})
    assert settings.feed_tokens == (TEST_FEED_TOKEN, NEXT_TOKEN)
    assert TEST_FEED_TOKEN not in repr(settings)
    (tmp_path / "one").write_text(TEST_FEED_TOKEN + "\n")
    sidecar = sidecar_from_env({"NATIVE_IAM_FEED_TOKEN_FILE": str(tmp_path / "one")})
    assert sidecar.feed_token == TEST_FEED_TOKEN and TEST_FEED_TOKEN not in repr(sidecar)


def test_sidecar_with_a_wrong_feed_token_never_becomes_ready(tmp_path: Path) -> None:
    """Real processes: a wrong token leaves the sidecar NOT_SERVING, logging why; the right one syncs.
    Neither process logs a feed token."""
    service = TokenService(tmp_path, f"sqlite:///{tmp_path}/native-iam.db").start()
    try:
        wrong = Sidecar(tmp_path, service.grpc_address, {"NATIVE_IAM_FEED_TOKEN": WRONG}, name="sidecar-wrong")
        wrong.start(wait_ready=False)
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                assert not wrong.ready(), "a sidecar with a wrong feed token became ready"
                time.sleep(0.1)
            assert "revocation feed refused this sidecar: check NATIVE_IAM_FEED_TOKEN" in wrong.log()
        finally:
            wrong.stop()
        right = Sidecar(tmp_path, service.grpc_address, name="sidecar-right").start()  # TEST_FEED_TOKEN
        right.stop()
        assert "feed subscriber refused" in service.log()
        for log in (service.log(), wrong.log(), right.log()):
            assert WRONG not in log and TEST_FEED_TOKEN not in log
    finally:
        service.stop()


# ---- an access token with scope native-iam.feed (a sidecar's workload token) ----

FEED_PASSWORD = "pw-feed-123456"


async def _feed_token(app: TokenServiceApp, scopes: tuple[str, ...], *, name: str = "orders-sidecar") -> Any:
    """A password-grant answer for an identity whose policy allows the feed scope and orders:read."""
    await add_identity(app.core, name, FEED_PASSWORD, (FEED_SCOPE, "orders:read"), namespace="shop")
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        answer = await oauth_pb2_grpc.OAuthStub(channel).CreateTokenWithPassword(
            oauth_pb2.CreateTokenWithPasswordRequest(
                namespace="shop", identity=name, password=FEED_PASSWORD, scopes=scopes
            )
        )
    assert answer.status == oauth_pb2.CreateTokenWithPasswordResponse.OK
    return answer


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_an_access_token_with_the_feed_scope_opens_the_stream(sqlite_url: str) -> None:
    """Without any static feed token configured: the workload token alone syncs."""
    async with running_token_service(sqlite_url, feed_tokens=()) as app:
        await _revoke_someone(app)
        answer = await _feed_token(app, (FEED_SCOPE,))
        async with grpc.aio.insecure_channel(app.grpc_target) as channel:
            first = await _watch(feed_pb2_grpc.FeedStub(channel), _bearer(answer.access_token))
    assert first.synced and {r.identity for r in first.revocations} == {"secret-agent"}


ACCESS_REFUSALS = ("without the feed scope", "refresh token", "identity disabled", "forged", "another audience")


@pytest.mark.parametrize("case", ACCESS_REFUSALS)
async def test_access_tokens_the_feed_refuses(sqlite_url: str, case: str, caplog: pytest.LogCaptureFixture) -> None:
    """Each is UNAUTHENTICATED with the one generic message; the log line says which check failed."""
    async with running_token_service(sqlite_url, feed_tokens=(TEST_FEED_TOKEN,)) as app:
        answer = await _feed_token(app, ("orders:read",) if case == "without the feed scope" else (FEED_SCOPE,))
        token = answer.access_token
        if case == "refresh token":
            token = answer.refresh_token
        elif case == "identity disabled":
            await admin.set_identity_active(app.core, "shop", "orders-sidecar", False)
        elif case == "forged":
            header, payload, _ = token.split(".")
            token = f"{header}.{payload}.{'A' * 86}"
        elif case == "another audience":
            # A replica of the same service (database, keys, issuer) issuing for another audience.
            async with running_token_service(sqlite_url, feed_tokens=(), audience="orders") as other:
                token = (await _feed_token(other, (FEED_SCOPE,), name="other-sidecar")).access_token
        async with grpc.aio.insecure_channel(app.grpc_target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _watch(feed_pb2_grpc.FeedStub(channel), _bearer(token))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == (
        f"the feed credential is not accepted (NATIVE_IAM_FEED_TOKEN, or an access token for this service with scope"
        f" {FEED_SCOPE})"
    )
    reasons = {
        "without the feed scope": "without scope native-iam.feed",
        "refresh token": "access token refused: TOKEN_INVALID",
        "identity disabled": "access token refused: TOKEN_DISABLED",
        "forged": "access token refused: TOKEN_INVALID",
        "another audience": "for another audience",
    }
    logged = [str(getattr(r, "reason", "")) for r in caplog.records if r.getMessage() == "feed subscriber refused"]
    assert any(reasons[case] in reason for reason in logged), logged
    assert all(token not in reason for reason in logged) and token not in caplog.text


async def test_a_stream_opened_with_an_access_token_ends_when_it_expires(sqlite_url: str) -> None:
    """The subscriber must come back with a fresh token: a revoked client does not keep the feed."""
    async with running_token_service(sqlite_url, feed_tokens=(), access_token_ttl_s=2) as app:
        answer = await _feed_token(app, (FEED_SCOPE,))
        async with grpc.aio.insecure_channel(app.grpc_target) as channel:
            stream = feed_pb2_grpc.FeedStub(channel).WatchRevocations(
                feed_pb2.WatchRevocationsRequest(cursor=0, subscriber="probe"), metadata=_bearer(answer.access_token)
            )
            started, received = time.monotonic(), 0
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                async for _ in stream:
                    received += 1
                    assert time.monotonic() - started < 15, "the stream outlived its access token"
    assert received >= 2  # the snapshot and heartbeats came first
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in (ended.value.details() or "")


def test_sidecar_subscribes_with_its_workload_token_and_renews_it(tmp_path: Path) -> None:
    """Real processes, no static feed token anywhere: the sidecar buys a native-iam.feed token at a
    token endpoint with its SA token (here a stand-in that answers with a real token of the token
    service), syncs, and keeps synced across the 3 s token lifetimes (the token service ends each
    stream at expiry; the sidecar renews first). No log holds a token or the SA token."""
    service = TokenService(
        tmp_path,
        f"sqlite:///{tmp_path}/native-iam.db",
        env={"NATIVE_IAM_FEED_TOKEN": "", "NATIVE_IAM_ACCESS_TOKEN_TTL_S": "3"},
    ).start()
    sa_token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2hvcDpvcmRlcnMifQ.sa-sig"
    (tmp_path / "sa-token").write_text(sa_token)
    try:
        service.create_identity(service.admin_token(), "shop", "orders-sidecar", FEED_PASSWORD, (FEED_SCOPE,))
        endpoint = TokenEndpoint(assertion=sa_token)

        def real_token(form: dict[str, str]) -> Any:
            if form.get("client_assertion") != sa_token or form.get("resource") != "native-iam":
                return 401, {"error": "invalid_client"}
            answer = service.password_grant("orders-sidecar", FEED_PASSWORD, namespace="shop", scopes=(FEED_SCOPE,))
            endpoint.issued.append(answer.access_token)
            return 200, {"access_token": answer.access_token, "token_type": "Bearer", "expires_in": answer.expires_in}

        endpoint.answer = real_token
        with endpoint.running():
            env = {
                "NATIVE_IAM_FEED_TOKEN": "",
                "NATIVE_IAM_TOKEN_ENDPOINT": endpoint.url,
                "NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE": str(tmp_path / "sa-token"),
            }
            sidecar = Sidecar(tmp_path, service.grpc_address, env, name="sidecar-workload").start()
            try:
                deadline = time.monotonic() + 8.0
                while time.monotonic() < deadline:
                    assert sidecar.ready(), "the sidecar lost readiness while renewing its feed token"
                    time.sleep(0.2)
                assert len(endpoint.issued) >= 3, "the feed token was not renewed"
            finally:
                sidecar.stop()
        assert "the revocation feed uses a workload token" in sidecar.log()
        for log in (service.log(), sidecar.log()):
            assert sa_token not in log and not any(token in log for token in endpoint.issued)
    finally:
        service.stop()


async def test_a_stream_opened_with_an_access_token_ends_when_it_is_revoked(sqlite_url: str) -> None:
    """Disabling the identity (or, after issue 13 part A, the client) ends its open stream at the next heartbeat."""
    async with running_token_service(sqlite_url, feed_tokens=()) as app:
        answer = await _feed_token(app, (FEED_SCOPE,))
        async with grpc.aio.insecure_channel(app.grpc_target) as channel:
            stream = feed_pb2_grpc.FeedStub(channel).WatchRevocations(
                feed_pb2.WatchRevocationsRequest(cursor=0, subscriber="probe"), metadata=_bearer(answer.access_token)
            )
            messages = aiter(stream)
            assert (await anext(messages)).synced
            await admin.set_identity_active(app.core, "shop", "orders-sidecar", False)
            disabled_at = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                async for _ in messages:
                    assert time.monotonic() - disabled_at < 10, "the stream outlived its revoked token"
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in (ended.value.details() or "")
