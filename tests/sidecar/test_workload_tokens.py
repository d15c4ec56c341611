"""sidecar/workload_tokens.py: WorkloadTokens.GetToken against a real HTTP token endpoint on loopback.

The request is the RFC 7523 client assertion on a client_credentials grant; answers are cached per
(audience, scopes), renewed before expiry, fetched once for many concurrent callers; the pod's
service-account token is re-read after a rotation; every RFC 6749 §5.2 answer and every transport
failure has its gRPC code; neither the service-account token nor an access token reaches a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from native_iam.claims import FEED_SCOPE
from native_iam.limits import MAX_AUDIENCE_BYTES
from native_iam.oauth.v1 import workload_pb2, workload_pb2_grpc
from sidecar import workload_tokens
from sidecar.metrics import Metrics
from sidecar.oauth_facade import parsed_handler
from sidecar.server import Sidecar
from sidecar.settings import Settings
from sidecar.workload_tokens import (
    ASSERTION_TYPE,
    WorkloadTokenError,
    WorkloadTokens,
    WorkloadTokensServicer,
    renew_after,
)
from token_service.testing import TEST_FEED_TOKEN

from ._feed import FeedServer
from ._stack import free_port
from ._token_endpoint import TokenEndpoint
from .test_server import settings_for, until

SA_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrOHMifQ.sa-signature-one"
ROTATED = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrOHMifQ.sa-signature-two"
Code = grpc.StatusCode


@pytest.fixture
def sa_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(SA_TOKEN + "\n")
    return path


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(assertion=SA_TOKEN).running() as running:
        yield running


def _tokens(url: str, sa_file: Path, **kw: Any) -> tuple[WorkloadTokens, Metrics]:
    metrics = Metrics(CollectorRegistry())
    settings = Settings(token_endpoint=url, service_account_token_file=str(sa_file), forward_timeout_s=2.0)
    return WorkloadTokens(settings, metrics, **kw), metrics


@contextlib.asynccontextmanager
async def _served(
    url: str, sa_file: Path
) -> AsyncIterator[tuple[workload_pb2_grpc.WorkloadTokensStub, Metrics, grpc.aio.Channel]]:
    """GetToken on a real grpc.aio server on loopback, as the sidecar serves it."""
    tokens, metrics = _tokens(url, sa_file)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (parsed_handler(workload_tokens.SERVICE, workload_tokens.methods(WorkloadTokensServicer(tokens))),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield workload_pb2_grpc.WorkloadTokensStub(channel), metrics, channel
    finally:
        await server.stop(0)
        tokens.close()


def _ask(audience: str = "orders", *scopes: str) -> workload_pb2.GetTokenRequest:
    return workload_pb2.GetTokenRequest(audience=audience, scopes=list(scopes))


def _fetches(metrics: Metrics, result: str) -> float:
    return metrics.workload_token_fetches.labels(result)._value.get()


async def test_get_token_sends_the_sa_assertion_and_answers_from_the_cache(
    endpoint: TokenEndpoint, sa_file: Path
) -> None:
    """One client_credentials POST with the jwt-bearer assertion, resource and scope; the same
    (audience, scopes) in another order or repeated is a cache hit; the answer is complete."""
    async with _served(endpoint.url, sa_file) as (stub, metrics, _):
        first = await stub.GetToken(_ask("orders", "orders:write", "orders:read"))
        again = await stub.GetToken(_ask("orders", "orders:read", "orders:write", "orders:read"))
    assert len(endpoint.forms) == 1
    assert endpoint.forms[0] == {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": SA_TOKEN,
        "resource": "orders",
        "scope": "orders:read orders:write",
    }
    assert again == first and first.access_token == endpoint.issued[0]
    assert first.token_type == "Bearer" and first.audience == "orders"
    assert list(first.scopes) == ["orders:read", "orders:write"]
    assert 0 < first.expires_in <= 300 and first.expires_at > 0
    assert metrics.workload_token_hits._value.get() == 1 and _fetches(metrics, "ok") == 1


async def test_each_audience_and_scope_set_has_its_own_token(endpoint: TokenEndpoint, sa_file: Path) -> None:
    async with _served(endpoint.url, sa_file) as (stub, _, _):
        orders = await stub.GetToken(_ask("orders"))
        payments = await stub.GetToken(_ask("payments"))
        narrower = await stub.GetToken(_ask("orders", "orders:read"))
    assert len({orders.access_token, payments.access_token, narrower.access_token}) == 3
    assert [f["resource"] for f in endpoint.forms] == ["orders", "payments", "orders"]
    assert "scope" not in endpoint.forms[0]


def test_renewal_comes_at_80_percent_or_60_s_before_expiry_but_not_before_half() -> None:
    assert renew_after(3600) == 2880  # 80% first
    assert renew_after(300) == 240  # both
    assert renew_after(200) == 140  # 60 s before the end first
    assert renew_after(100) == 50  # never before half the lifetime
    assert renew_after(2) == 1


async def test_a_token_due_for_renewal_is_fetched_again(sa_file: Path) -> None:
    """expires_in=6: renewed after 3 s, while it is still valid."""
    with TokenEndpoint(assertion=SA_TOKEN, expires_in=6).running() as endpoint:
        async with _served(endpoint.url, sa_file) as (stub, _, _):
            first = await stub.GetToken(_ask())
            assert (await stub.GetToken(_ask())).access_token == first.access_token
            await asyncio.sleep(3.2)
            renewed = await stub.GetToken(_ask())
    assert renewed.access_token != first.access_token and len(endpoint.forms) == 2


async def test_concurrent_requests_share_one_upstream_request(sa_file: Path) -> None:
    """100 concurrent GetToken for one audience while the endpoint takes 0.5 s: one POST."""
    with TokenEndpoint(assertion=SA_TOKEN, delay_s=0.5).running() as endpoint:
        async with _served(endpoint.url, sa_file) as (stub, _, _):
            answers = await asyncio.gather(*(stub.GetToken(_ask("orders", "orders:read")) for _ in range(100)))
    assert len(endpoint.forms) == 1
    assert {a.access_token for a in answers} == {endpoint.issued[0]}


async def test_a_rotated_sa_token_is_read_at_the_next_fetch(endpoint: TokenEndpoint, sa_file: Path) -> None:
    """The kubelet swaps the file atomically; the next fetch sends the new token, and a refusal of
    the old one is not remembered."""
    async with _served(endpoint.url, sa_file) as (stub, _, _):
        await stub.GetToken(_ask("orders"))
        rotated = sa_file.with_name("token.new")
        rotated.write_text(ROTATED)
        os.replace(rotated, sa_file)
        endpoint.assertion = ROTATED
        await stub.GetToken(_ask("payments"))
    assert [f["client_assertion"] for f in endpoint.forms] == [SA_TOKEN, ROTATED]


REFUSALS: dict[str, tuple[int, Any, Code, str]] = {
    "invalid_client": (
        401,
        {"error": "invalid_client", "error_description": "unknown service account"},
        Code.UNAUTHENTICATED,
        "invalid_client: unknown service account",
    ),
    "invalid_scope": (400, {"error": "invalid_scope"}, Code.PERMISSION_DENIED, "invalid_scope"),
    "invalid_target": (400, {"error": "invalid_target"}, Code.PERMISSION_DENIED, "invalid_target"),
    "unauthorized_client": (400, {"error": "unauthorized_client"}, Code.PERMISSION_DENIED, "unauthorized_client"),
    "unsupported_grant_type": (
        400,
        {"error": "unsupported_grant_type"},
        Code.FAILED_PRECONDITION,
        "unsupported_grant_type",
    ),
    "invalid_request": (
        400,
        {"error": "invalid_request", "error_description": "resource: bad"},
        Code.INVALID_ARGUMENT,
        "resource: bad",
    ),
    "unknown error code": (400, {"error": "something_new"}, Code.PERMISSION_DENIED, "something_new"),
    "5xx": (503, b"busy", Code.UNAVAILABLE, "HTTP 503"),
    "429": (429, {"error": "slow_down"}, Code.UNAVAILABLE, "HTTP 429"),
    "4xx without an OAuth error": (404, b"<html>not found</html>", Code.UNAVAILABLE, "without an OAuth error"),
    "200 not JSON": (200, b"<html>", Code.UNAVAILABLE, "without a JSON object"),
    "200 without a token": (200, {"token_type": "Bearer", "expires_in": 60}, Code.UNAVAILABLE, "access_token"),
    "200 not Bearer": (200, {"access_token": "x", "token_type": "mac", "expires_in": 60}, Code.UNAVAILABLE, "Bearer"),
    "200 no expiry": (200, {"access_token": "x", "token_type": "Bearer"}, Code.UNAVAILABLE, "expires_in"),
    "200 bad scope": (
        200,
        {"access_token": "x", "token_type": "Bearer", "expires_in": 9, "scope": 'a"b'},
        Code.UNAVAILABLE,
        "scope",
    ),
    "redirect": (307, b"", Code.UNAVAILABLE, "HTTP 307"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_token_endpoint_answers_map_to_grpc_codes(endpoint: TokenEndpoint, sa_file: Path, case: str) -> None:
    """Each answer its code and a message saying why; a refusal is not cached (the next call asks again)."""
    status, body, code, says = REFUSALS[case]
    endpoint.answer = lambda form: (status, body)
    async with _served(endpoint.url, sa_file) as (stub, _, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetToken(_ask())
        assert refused.value.code() == code
        assert says in (refused.value.details() or "")
        endpoint.answer = endpoint.issue
        assert (await stub.GetToken(_ask())).access_token == endpoint.issued[-1]
    assert len(endpoint.forms) == 2  # the redirect was not followed


async def test_an_unreachable_token_service_is_unavailable(sa_file: Path) -> None:
    async with _served(f"http://127.0.0.1:{free_port()}/oauth2/token", sa_file) as (stub, metrics, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetToken(_ask())
    assert refused.value.code() == Code.UNAVAILABLE and "cannot be reached" in (refused.value.details() or "")
    assert _fetches(metrics, "unavailable") == 1


@pytest.mark.parametrize("problem", ["missing", "empty", "off"])
async def test_without_an_sa_token_or_endpoint_it_is_failed_precondition(
    endpoint: TokenEndpoint, tmp_path: Path, problem: str
) -> None:
    sa_file = tmp_path / "token"
    if problem == "empty":
        sa_file.write_text("\n")
    url = "" if problem == "off" else endpoint.url
    async with _served(url, sa_file) as (stub, metrics, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetToken(_ask())
    assert refused.value.code() == Code.FAILED_PRECONDITION
    assert "NATIVE_IAM_" in (refused.value.details() or "")
    assert endpoint.forms == [] and _fetches(metrics, "not_configured") == 1


BAD_REQUESTS = {
    "no audience": _ask(""),
    "audience with a space": _ask("orders api"),
    "audience with a newline": _ask("orders\n"),
    "audience too long": _ask("a" * (MAX_AUDIENCE_BYTES + 1)),  # the token service's limit too
    "bad scope": _ask("orders", 'a"b'),
    "too many scopes": _ask("orders", *(f"s{i}" for i in range(101))),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
async def test_malformed_requests_are_invalid_argument(endpoint: TokenEndpoint, sa_file: Path, case: str) -> None:
    async with _served(endpoint.url, sa_file) as (stub, _, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetToken(BAD_REQUESTS[case])
    assert refused.value.code() == Code.INVALID_ARGUMENT and endpoint.forms == []


async def test_corrupt_request_bytes_are_invalid_argument(endpoint: TokenEndpoint, sa_file: Path) -> None:
    async with _served(endpoint.url, sa_file) as (_, _, channel):
        corrupt = channel.unary_unary(f"/{workload_tokens.SERVICE}/GetToken", request_serializer=lambda raw: raw)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await corrupt(b"\x0a\x02\xff\xfe")  # field 1 (audience) is not UTF-8
    assert refused.value.code() == Code.INVALID_ARGUMENT


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_serves_the_cached_token_while_it_lives_and_a_refusal_drops_it(
    endpoint: TokenEndpoint, sa_file: Path
) -> None:
    clock = FakeClock()
    tokens, _ = _tokens(endpoint.url, sa_file, clock=clock)
    try:
        first = tokens.request("orders", ()).result(5)
        clock.now += renew_after(300) + 1  # due for renewal, 59 s left
        endpoint.answer = lambda form: (503, b"down")
        assert tokens.request("orders", ()).result(5) is first
        clock.now += 56  # 3 s left: too little to hand out
        with pytest.raises(WorkloadTokenError) as down:
            tokens.request("orders", ()).result(5)
        assert down.value.code == Code.UNAVAILABLE
        endpoint.answer = endpoint.issue
        second = tokens.request("orders", ()).result(5)
        clock.now += renew_after(300) + 1
        endpoint.answer = lambda form: (401, {"error": "invalid_client"})
        with pytest.raises(WorkloadTokenError) as refused:
            tokens.request("orders", ()).result(5)  # the client was disabled: the old token is not served
        assert refused.value.code == Code.UNAUTHENTICATED and second.access_token in endpoint.issued
    finally:
        tokens.close()


def test_the_cache_is_bounded(endpoint: TokenEndpoint, sa_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workload_tokens, "MAX_CACHED", 3)
    tokens, _ = _tokens(endpoint.url, sa_file)
    try:
        for audience in ("a", "b", "c", "d", "e"):
            tokens.request(audience, ()).result(5)
        assert len(tokens._cache) == 3
        tokens.request("a", ()).result(5)  # the least recently used went first
        assert len(endpoint.forms) == 6
        tokens.request("e", ()).result(5)
        assert len(endpoint.forms) == 6
    finally:
        tokens.close()


async def test_no_token_reaches_the_logs(
    endpoint: TokenEndpoint, sa_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with _served(endpoint.url, sa_file) as (stub, _, _):
        answer = await stub.GetToken(_ask("orders", "orders:read"))
        endpoint.answer = lambda form: (401, {"error": "invalid_client"})
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetToken(_ask("payments"))
    assert "workload token fetched" in caplog.text and "workload token refused" in caplog.text
    assert answer.access_token not in caplog.text and SA_TOKEN not in caplog.text
    assert SA_TOKEN not in repr(Settings(service_account_token_file=str(sa_file)))


# ---- the running sidecar: GetToken on the local API, the feed's credential ----


@contextlib.asynccontextmanager
async def _sidecar(feed: FeedServer, endpoint: TokenEndpoint, sa_file: Path, **kw: Any) -> AsyncIterator[Sidecar]:
    s = Sidecar(
        settings_for(feed, token_endpoint=endpoint.url, service_account_token_file=str(sa_file), **kw),
        Metrics(CollectorRegistry()),
    )
    await s.start()
    try:
        yield s
    finally:
        await s.stop(0)


async def test_the_sidecar_serves_get_token_and_subscribes_with_a_workload_token(
    feed: FeedServer, endpoint: TokenEndpoint, sa_file: Path
) -> None:
    """No static feed token, an SA token file: the feed credential is a workload token for the
    token service's audience with scope native-iam.feed, and GetToken is on the OAuth port."""
    async with _sidecar(feed, endpoint, sa_file) as sidecar:
        assert await until(lambda: sidecar.revocations.synced)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.oauth_port}") as channel:
            answer = await workload_pb2_grpc.WorkloadTokensStub(channel).GetToken(_ask("orders", "orders:read"))
    assert endpoint.forms[0]["resource"] == "native-iam" and endpoint.forms[0]["scope"] == FEED_SCOPE
    assert feed.credentials[0] == f"Bearer {endpoint.issued[0]}"
    assert answer.access_token == endpoint.issued[1] and list(answer.scopes) == ["orders:read"]


async def test_a_static_feed_token_wins_over_the_sa_token(
    feed: FeedServer, endpoint: TokenEndpoint, sa_file: Path
) -> None:
    async with _sidecar(feed, endpoint, sa_file, feed_token=TEST_FEED_TOKEN) as sidecar:
        assert await until(lambda: sidecar.revocations.synced)
    assert feed.credentials[0] == f"Bearer {TEST_FEED_TOKEN}" and endpoint.forms == []


async def test_the_feed_credential_is_renewed_before_expiry_without_losing_sync(
    feed: FeedServer, sa_file: Path
) -> None:
    """expires_in=2: the sidecar reopens the stream with a new token after 1 s, from its cursor."""
    with TokenEndpoint(assertion=SA_TOKEN, expires_in=2).running() as endpoint:
        async with _sidecar(feed, endpoint, sa_file) as sidecar:
            assert await until(lambda: sidecar.revocations.synced)
            assert await until(lambda: len(set(feed.credentials)) >= 3, within=10.0)
            assert sidecar.revocations.fresh()
    assert feed.credentials[:3] == [f"Bearer {t}" for t in endpoint.issued[:3]]
    assert feed.watch_requests[0] == 0


async def test_a_refused_feed_credential_is_renewed_at_once(
    feed: FeedServer, endpoint: TokenEndpoint, sa_file: Path
) -> None:
    """The token service refuses the cached token (revoked meanwhile): the next connect fetches a new one."""
    feed.refused.add("Bearer at-1-native-iam-native-iam.feed")
    async with _sidecar(feed, endpoint, sa_file) as sidecar:
        assert await until(lambda: sidecar.revocations.synced)
    assert feed.credentials[:2] == [f"Bearer {t}" for t in endpoint.issued[:2]]


def _jwt(client_id: str, iat: int) -> str:
    """An unsigned-looking JWT with the claims the revocation cache reads (the sidecar never
    verifies its own workload tokens; it only asks whether the feed killed them)."""
    import jwt

    payload = {"jti": f"j-{iat}", "sub": client_id, "client_id": client_id, "sub_kind": "client", "iat": iat}
    return jwt.encode(payload, "k" * 32, algorithm="HS256", headers={"kid": "k1"})


def test_a_cached_token_the_feed_revoked_is_fetched_again(sa_file: Path) -> None:
    """Its client disabled: every other sidecar denies the cached token within a second, so its
    own sidecar must stop handing it out too, at the next GetToken, not at its renewal."""
    from native_iam.oauth.v1 import feed_pb2

    from ._feed import revocation
    from .conftest import synced_cache
    from .test_revocations import _events

    served = iter([_jwt("shop-frontend", 100), _jwt("shop-frontend", 200)])
    endpoint = TokenEndpoint(assertion=SA_TOKEN)
    endpoint.answer = lambda form: (200, {"access_token": next(served), "token_type": "Bearer", "expires_in": 300})
    cache = synced_cache()
    with endpoint.running() as running:
        tokens, _ = _tokens(running.url, sa_file, revoked=workload_tokens.revoked_in(cache))
        try:
            first = tokens.request("orders", ()).result(5)
            assert tokens.request("orders", ()).result(5) is first  # alive: from the cache
            T, R = feed_pb2.RevocationTarget, feed_pb2.RevocationReason
            cache.apply(_events(revocation(1, T.CLIENT, R.CLIENT_DISABLED, client_id="shop-frontend", cutoff_unix=150)))
            second = tokens.request("orders", ()).result(5)
        finally:
            tokens.close()
    assert second.access_token != first.access_token
    assert workload_tokens.revocation_subject(second.access_token)["iat"] == 200.0
    assert workload_tokens.revocation_subject("not-a-jwt") == {}
