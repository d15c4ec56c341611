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

import grpc
import pytest

from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc
from tests.reliability._services import Sidecar, TokenService
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
