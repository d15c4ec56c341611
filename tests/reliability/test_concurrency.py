"""Concurrency: one refresh token refreshed 100 times at once (HTTP and gRPC mixed, gRPC only,
HTTP only with and without rotation), and an identity disabled while password grants are in
flight (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import jwt
import pytest
from sqlalchemy import func, select

from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc, oauth_pb2, oauth_pb2_grpc
from sidecar.revocations import RevocationCache
from tests.token_service.api.http.conftest import OAuthService, password_grant, refresh_grant, start_oauth_service
from tests.token_service.conftest import add_identity
from token_service.admin import service as admin
from token_service.app import TokenServiceApp
from token_service.store.tables import tokens
from token_service.testing import FEED_METADATA, running_token_service

CREATE_OK = oauth_pb2.CreateTokenWithPasswordResponse.OK
REFRESH_OK = oauth_pb2.RefreshTokenResponse.OK


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
async def oauth_http(service_url: str) -> AsyncIterator[OAuthService]:
    service = await start_oauth_service(service_url)
    yield service
    await service.app.stop(0)


async def _families(app: TokenServiceApp, identity: str) -> int:
    async with app.core.store.read() as conn:
        query = select(func.count(func.distinct(tokens.c.family_id))).where(tokens.c.identity == identity)
        return int((await conn.execute(query)).scalar_one())


async def test_100_concurrent_refreshes_over_http_and_grpc(oauth_http: OAuthService) -> None:
    """A public (rotating) client's refresh token refreshed 50× over HTTP and 50× over gRPC, all at
    once: no 5xx and no gRPC error; inside the grace window every refresh, on either transport,
    gets a fresh pair of the same family (gRPC applies the client's rotation); still one family."""
    service = oauth_http
    limits = httpx.Limits(max_connections=50)
    async with (
        httpx.AsyncClient(base_url=service.url, limits=limits, timeout=60) as http,
        grpc.aio.insecure_channel(service.app.grpc_target) as channel,
    ):
        first = (await password_grant(http, service, "spa", scope="orders:read")).json()
        parent = first["refresh_token"]
        stub = oauth_pb2_grpc.OAuthStub(channel)

        async def over_http() -> httpx.Response:
            return await refresh_grant(http, service, "spa", parent)

        async def over_grpc() -> oauth_pb2.RefreshTokenResponse:
            return await stub.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=parent), timeout=60)

        started = time.monotonic()
        results = await asyncio.gather(*(over_http() if i % 2 else over_grpc() for i in range(100)))
        elapsed = time.monotonic() - started
    by_http = [r for r in results if isinstance(r, httpx.Response)]
    by_grpc = [r for r in results if not isinstance(r, httpx.Response)]
    assert [r.status_code for r in by_http] == [200] * 50, [r.text for r in by_http if r.status_code != 200][:3]
    assert [r.status for r in by_grpc] == [REFRESH_OK] * 50
    children = [r.json()["refresh_token"] for r in by_http] + [r.refresh_token for r in by_grpc]
    assert len(set(children)) == 100 and all(children)
    family = _claims(parent)["fam"]
    assert {_claims(c)["fam"] for c in children} == {family}
    access = [r.json()["access_token"] for r in by_http] + [r.access_token for r in by_grpc]
    assert len(set(access)) == 100 and {_claims(a)["scope"] for a in access} == {"orders:read"}
    assert await _families(service.app, "alice") == 1
    assert elapsed < 30, elapsed


async def _token_rows(app: TokenServiceApp, identity: str) -> dict[str, Any]:
    """The identity's token rows by jti (state, spent_at, family_id, usage)."""
    async with app.core.store.read() as conn:
        query = select(tokens.c.jti, tokens.c.state, tokens.c.spent_at, tokens.c.family_id, tokens.c.usage)
        return {row.jti: row for row in await conn.execute(query.where(tokens.c.identity == identity))}


async def test_100_concurrent_refreshes_over_grpc_only(oauth_http: OAuthService) -> None:
    """A public (rotating) client's refresh token refreshed 100× at once over gRPC RefreshToken
    alone: 100 × OK (no error code) inside the grace window, each with its own new refresh token
    (gRPC applies the client's rotation), 100 distinct access tokens; one family, parent spent."""
    service = oauth_http
    async with (
        httpx.AsyncClient(base_url=service.url, timeout=60) as http,
        grpc.aio.insecure_channel(service.app.grpc_target) as channel,
    ):
        parent = (await password_grant(http, service, "spa", scope="orders:read")).json()["refresh_token"]
        stub = oauth_pb2_grpc.OAuthStub(channel)
        request = oauth_pb2.RefreshTokenRequest(refresh_token=parent)
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(stub.RefreshToken(request, timeout=60) for _ in range(100)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, [(e.code(), e.details()) if isinstance(e, grpc.aio.AioRpcError) else e for e in errors][:3]
    statuses = [oauth_pb2.RefreshTokenResponse.Status.Name(o.status) for o in outcomes]  # type: ignore[union-attr]
    assert statuses == ["OK"] * 100, sorted(set(statuses))
    children = {o.refresh_token for o in outcomes}  # type: ignore[union-attr]
    assert len(children) == 100 and all(children)
    access = {o.access_token for o in outcomes}  # type: ignore[union-attr]
    assert len(access) == 100 and {_claims(a)["scope"] for a in access} == {"orders:read"}
    rows = await _token_rows(service.app, "alice")
    parent_row = rows[_claims(parent)["jti"]]
    assert parent_row.state == "active" and parent_row.spent_at is not None
    assert await _families(service.app, "alice") == 1
    assert elapsed < 30, elapsed
    print(f"\n100 gRPC refreshes of one refresh token: 100 × OK in {elapsed:.2f} s, 1 family, parent spent")


async def test_100_concurrent_rotating_refreshes_over_http_only(oauth_http: OAuthService) -> None:
    """A rotating client's refresh token refreshed 100× at once over HTTP alone: inside the grace
    window each request gets its own fresh pair (100 × 200, 100 distinct refresh tokens of the
    parent's family, 100 distinct access tokens, no 5xx); the parent is spent, one family. After
    the window the parent is a replay: invalid_grant, and the whole family is disabled."""
    service = oauth_http
    async with httpx.AsyncClient(base_url=service.url, limits=httpx.Limits(max_connections=100), timeout=60) as http:
        parent = (await password_grant(http, service, "rotating", scope="orders:read")).json()["refresh_token"]
        data = {"grant_type": "refresh_token", "refresh_token": parent}
        headers = service.basic("rotating")
        started = time.monotonic()
        responses = await asyncio.gather(*(http.post("/oauth2/token", data=data, headers=headers) for _ in range(100)))
        elapsed = time.monotonic() - started
        statuses = [r.status_code for r in responses]
        assert statuses == [200] * 100, (sorted(set(statuses)), [r.text for r in responses if r.status_code != 200][:3])
        children = [r.json()["refresh_token"] for r in responses]
        access = [r.json()["access_token"] for r in responses]
        family = _claims(parent)["fam"]
        assert len(set(children)) == 100 and {_claims(c)["fam"] for c in children} == {family}
        assert len(set(access)) == 100 and {_claims(a)["scope"] for a in access} == {"orders:read"}
        rows = await _token_rows(service.app, "alice")
        assert rows[_claims(parent)["jti"]].spent_at is not None
        assert {rows[_claims(c)["jti"]].state for c in children} == {"active"}
        assert {rows[_claims(c)["jti"]].spent_at for c in children} == {None}
        assert await _families(service.app, "alice") == 1
        # After the grace window the parent is a replay: the family is revoked (docs/oauth-http.md, RFC 9700 §4.14.2).
        grace = service.app.settings.refresh_grace_s
        service.app.core.clock = lambda: time.time() + grace + 1
        replay = await http.post("/oauth2/token", data=data, headers=headers)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant", replay.text
        rows = await _token_rows(service.app, "alice")
        members = [row.state for row in rows.values() if row.family_id == family]
        assert len(members) == 2 + 200 and set(members) == {"disabled"}  # the grant's pair + 100 pairs
    assert elapsed < 30, elapsed
    print(
        f"\n100 HTTP rotating refreshes of one refresh token: 100 × 200, 100 distinct children of one family "
        f"in {elapsed:.2f} s; replay after the {grace:g} s grace window: 400 invalid_grant, family of "
        f"{len(members)} tokens disabled"
    )


async def test_100_concurrent_refreshes_without_rotation_over_http(oauth_http: OAuthService) -> None:
    """A non-rotating client's refresh token refreshed 100× at once: 100 × 200, no refresh_token
    in any response, 100 distinct access tokens, one family."""
    service = oauth_http
    async with httpx.AsyncClient(base_url=service.url, limits=httpx.Limits(max_connections=100), timeout=60) as http:
        parent = (await password_grant(http, service, "web", scope="orders:read")).json()["refresh_token"]
        data = {"grant_type": "refresh_token", "refresh_token": parent}
        responses = await asyncio.gather(
            *(http.post("/oauth2/token", data=data, headers=service.basic("web")) for _ in range(100))
        )
    assert [r.status_code for r in responses] == [200] * 100
    assert not any("refresh_token" in r.json() for r in responses)
    assert len({r.json()["access_token"] for r in responses}) == 100
    assert await _families(service.app, "alice") == 1


@pytest.fixture
async def grpc_service(service_url: str) -> AsyncIterator[TokenServiceApp]:
    async with running_token_service(service_url) as app:
        yield app


async def _feed_snapshot(target: str) -> RevocationCache:
    """The revocation set a sidecar would hold: Feed.WatchRevocations(0) applied until synced."""
    cache = RevocationCache(max_staleness_s=60)
    async with grpc.aio.insecure_channel(target) as channel:
        stream = feed_pb2_grpc.FeedStub(channel).WatchRevocations(
            feed_pb2.WatchRevocationsRequest(cursor=0), metadata=FEED_METADATA
        )
        async for message in stream:
            cache.apply(message)
            if cache.synced:
                stream.cancel()
                break
    return cache


ROUNDS = 2
#: More rounds only while none has both issued and refused (the race's timing is the machine's).
MAX_ROUNDS = 6


async def test_disable_during_issuance_cuts_every_issued_token(grpc_service: TokenServiceApp) -> None:
    """80 password grants race one identity disable (2 to 6 rounds, a fresh identity each): every grant
    that started after the disable returned is refused, and every token that was issued is dead
    afterwards — at the token service (CheckAccess) and in the revocation set a sidecar builds from
    the feed (the cut-off covers its iat). At least one round must both issue and refuse, or the
    race did not happen."""
    app = grpc_service
    counts: list[tuple[int, int]] = []
    for round_ in range(MAX_ROUNDS):
        if round_ >= ROUNDS and any(n > 0 and r > 0 for n, r in counts):
            break
        # Each reading of the service's clock is a quarter second later than the one before: a race
        # that would need a second boundary to fall inside a few milliseconds shows up every run.
        ticks = itertools.count()
        app.core.clock = lambda ticks=ticks: time.time() + next(ticks) * 0.25
        issued, refused = await _race_disable_against_grants(app, f"carol-{round_}")
        counts.append((len(issued), len(refused)))
        assert set(refused) <= {oauth_pb2.CreateTokenWithPasswordResponse.IDENTITY_NOT_ACTIVE}
        revocations = await _feed_snapshot(app.grpc_target)
        alive = []
        for token in issued:
            c = _claims(token)
            reason = revocations.lookup(jti=c["jti"], identity=c["sub"], namespace=c["namespace"], kid="", iat=c["iat"])
            if reason is None:
                alive.append(c["iat"])
        assert not alive, (
            f"{len(alive)} of {len(issued)} issued tokens survive the disable at a sidecar (iat {alive[:3]})"
        )
    print(
        "\ndisable vs 80 grants: " + "; ".join(f"round {i}: {n} issued, {r} refused" for i, (n, r) in enumerate(counts))
    )
    assert any(n > 0 and r > 0 for n, r in counts), f"no round both issued and refused: {counts}"


async def _race_disable_against_grants(app: TokenServiceApp, name: str) -> tuple[list[str], list[int]]:
    """Start 80 grants 2 ms apart and disable ``name`` after 50 ms; check what was issued at
    CheckAccess. Returns (issued access tokens, refusal statuses)."""
    await add_identity(app.core, name, "carol-pass", ("orders:read",), namespace="shop")
    request = oauth_pb2.CreateTokenWithPasswordRequest(
        namespace="shop", identity=name, password="carol-pass", scopes=["orders:read"]
    )
    disabled_at: list[float] = []
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stub = oauth_pb2_grpc.OAuthStub(channel)

        async def grant(delay: float) -> tuple[float, oauth_pb2.CreateTokenWithPasswordResponse]:
            await asyncio.sleep(delay)
            started = time.monotonic()
            return started, await stub.CreateTokenWithPassword(request, timeout=60)

        async def disable() -> None:
            await asyncio.sleep(0.05)
            await admin.set_identity_active(app.core, "shop", name, False)
            disabled_at.append(time.monotonic())

        grants = [grant(i * 0.002) for i in range(80)]
        *results, _ = await asyncio.gather(*grants, disable())
        issued = [(started, r.access_token) for started, r in results if r.status == CREATE_OK]
        refused = [r.status for _, r in results if r.status != CREATE_OK]
        assert all(started < disabled_at[0] for started, _ in issued), "a grant started after the disable got a token"
        checks = await asyncio.gather(
            *(stub.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=t, scopes=["orders:read"])) for _, t in issued)
        )
        assert {c.status for c in checks} <= {oauth_pb2.CheckAccessResponse.TOKEN_DISABLED}
    return [t for _, t in issued], refused
