"""Feed failover between two token-service replicas, and sidecar (re)start readiness.

Replicas: two ``native-iam token-service`` processes on one PostgreSQL database; the sidecar's
``NATIVE_IAM_TOKEN_URL`` is a gRPC target that resolves to both
(``ipv4:127.0.0.1:P1,127.0.0.1:P2``, what a Kubernetes Service name gives in production). The
replica serving the sidecar's feed is SIGKILLed and a token revoked through the other one: the
sidecar reconnects there, resumes from exactly the cursor it held (its log at sync and at the
disconnect, the database's newest event, and the cursor the survivor was asked for all agree; no
new snapshot) and denies the token.

Restart: a sidecar started while the token service is unreachable stays NOT_SERVING and denies
(503) — it never decides on an empty revocation set; once the token service is back it becomes
ready and a token revoked earlier is denied from its very first decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from sqlalchemy import func, select

from native_iam.admin.v1 import admin_pb2
from native_iam.oauth.v1 import oauth_pb2
from token_service.core import Core
from token_service.store.tables import revocations
from token_service.testing import settings_for_tests

from ._services import Sidecar, TokenService, json_lines

ALICE_PASSWORD = "alice-password-for-failover"
Check = oauth_pb2.CheckAccessResponse


def _jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


def _alice(service: TokenService) -> str:
    response = service.password_grant("alice", ALICE_PASSWORD, namespace="shop", scopes=("orders:read",))
    assert response.status == oauth_pb2.CreateTokenWithPasswordResponse.OK, response
    return response.access_token


def _disable(service: TokenService, admin_token: str, token: str) -> None:
    stub, md = service.admin("Tokens", admin_token)
    stub.SetTokenEnabled(admin_pb2.SetTokenEnabledRequest(jti=_jti(token), enabled=False), metadata=md, timeout=10)


def _sidecar_cursors(sidecar: Sidecar, message: str) -> list[int]:
    """The ``cursor`` field of the sidecar's JSON log records with this message, in order."""
    return [
        int(r["cursor"])  # type: ignore[call-overload]
        for r in json_lines(sidecar.log())
        if r.get("msg") == message and "cursor" in r
    ]


async def _database_head(db_url: str) -> int:
    """The newest revocation event sequence, read straight from the ``revocations`` table."""
    core = Core.build(settings_for_tests(db_url))
    await core.start()
    try:
        async with core.store.read() as conn:
            return int((await conn.execute(select(func.max(revocations.c.sequence)))).scalar_one() or 0)
    finally:
        await core.close()


def _subscriptions(service: TokenService, subscriber: str) -> list[int]:
    """Cursors with which ``subscriber`` opened feed streams at this replica (from its JSON log)."""
    return [
        int(r.get("cursor", -1))  # type: ignore[arg-type]
        for r in json_lines(service.log())
        if r.get("msg") == "feed subscriber connected" and r.get("subscriber") == subscriber
    ]


@pytest.mark.postgres
def test_feed_fails_over_to_the_other_replica_and_resumes_from_its_cursor(postgres_url: str, tmp_path: Path) -> None:
    """Kill the replica serving the feed: the sidecar reconnects to the other, from its cursor, and
    a token revoked there is denied within the reconnect back-off; other decisions are unchanged."""
    replicas = [TokenService(tmp_path, postgres_url, name=f"replica-{i}") for i in (1, 2)]
    with contextlib.ExitStack() as stack:
        for replica in replicas:
            replica.start()
            stack.callback(replica.stop)
        admin_token = replicas[0].admin_token()
        replicas[0].create_identity(admin_token, "shop", "alice", ALICE_PASSWORD, ("orders:read",))
        revoked_before, revoked_during, valid = _alice(replicas[0]), _alice(replicas[0]), _alice(replicas[1])
        _disable(replicas[0], admin_token, revoked_before)
        for _ in range(2):  # more events, so the cursor the sidecar holds is not just 1
            _disable(replicas[1], admin_token, _alice(replicas[1]))

        target = "ipv4:" + ",".join(r.grpc_address for r in replicas)
        sidecar = Sidecar(tmp_path, target, {"NATIVE_IAM_SUBSCRIBER": "failover-sidecar"}).start()
        stack.callback(sidecar.stop)
        assert sidecar.check_access(revoked_before) == Check.TOKEN_DISABLED
        assert sidecar.check_access(revoked_during) == Check.OK

        serving = [r for r in replicas if _subscriptions(r, "failover-sidecar")]
        hints = [line for r in replicas for line in r.log().splitlines() if "subscriber" in line]
        assert len(serving) == 1, f"the sidecar's feed should be served by exactly one replica: {hints[-4:]}"
        victim, survivor = serving[0], next(r for r in replicas if r is not serving[0])
        # The cursor the sidecar holds before the kill: it logged it when its feed synced, and it
        # must be the database's newest event (it has applied everything there is).
        held = _sidecar_cursors(sidecar, "revocation feed synced")
        head = asyncio.run(_database_head(postgres_url))
        assert len(held) == 1 and held[0] == head > 0, (held, head)
        victim.kill()
        killed_at = time.monotonic()
        _disable(survivor, admin_token, revoked_during)
        while sidecar.check_access(revoked_during) != Check.TOKEN_DISABLED:
            assert time.monotonic() - killed_at < 8.0, "revocation through the surviving replica never arrived"
            time.sleep(0.05)
        took = time.monotonic() - killed_at
        cursors = _subscriptions(survivor, "failover-sidecar")
        dropped = _sidecar_cursors(sidecar, "revocation feed disconnected")
        # The stream broke with exactly that cursor, and the survivor was asked to resume from it
        # (not 0, which would mean a new snapshot, and not any other point in the feed).
        assert dropped and dropped[0] == held[0], f"disconnected with cursor {dropped}, held {held[0]}"
        assert cursors and cursors[0] == held[0], f"resubscribed with cursor {cursors}, held {held[0]}"
        assert sidecar.check_access(revoked_before) == Check.TOKEN_DISABLED
        assert sidecar.check_access(valid) == Check.OK
        print(
            f"\nfailover: revocation denied {took:.2f} s after the kill; cursor held before the kill "
            f"{held[0]} (database head {head}), at disconnect {dropped[0]}, resubscribed with {cursors}"
        )


@pytest.fixture
def revoked_and_valid(tmp_path: Path) -> Iterator[tuple[TokenService, str, str]]:
    service = TokenService(tmp_path, f"sqlite:///{tmp_path}/native-iam.db").start()
    try:
        admin_token = service.admin_token()
        service.create_identity(admin_token, "shop", "alice", ALICE_PASSWORD, ("orders:read",))
        revoked, valid = _alice(service), _alice(service)
        _disable(service, admin_token, revoked)
        yield service, revoked, valid
    finally:
        service.stop()


def test_sidecar_started_without_token_service_is_not_ready_and_denies(
    revoked_and_valid: tuple[TokenService, str, str], tmp_path: Path
) -> None:
    """Started while the token service is down: NOT_SERVING and 503 for every token (even the
    revoked one is never allowed); once it is back: SERVING, revoked denied 401, valid allowed."""
    service, revoked, valid = revoked_and_valid
    service.stop()
    sidecar = Sidecar(tmp_path, service.grpc_address).start(wait_ready=False)
    try:
        sidecar.process.wait_port("127.0.0.1", sidecar.authz_port)  # type: ignore[union-attr]
        answers = []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            answers.append((sidecar.ready(), sidecar.check(revoked), sidecar.check(valid)))
            time.sleep(0.05)
        assert answers and set(answers) == {(False, 503, 503)}, set(answers)
        service.start()
        became_ready = time.monotonic()
        while not sidecar.ready():
            assert time.monotonic() - became_ready < 10.0, "the sidecar never became ready"
            time.sleep(0.05)
        assert sidecar.check(revoked) == 401
        assert sidecar.check(valid) == 200
    finally:
        sidecar.stop()


def test_restarted_sidecar_never_allows_a_revoked_token_while_starting(
    revoked_and_valid: tuple[TokenService, str, str], tmp_path: Path
) -> None:
    """A sidecar restarted with the token service up is checked in a tight loop from the moment its
    port opens: the revoked token is never allowed (the valid one may pass as soon as keys and the
    snapshot are in, a moment before health says SERVING)."""
    service, revoked, valid = revoked_and_valid
    first = Sidecar(tmp_path, service.grpc_address, name="sidecar-first").start()
    assert first.check(revoked) == 401
    first.stop()
    second = Sidecar(tmp_path, service.grpc_address, name="sidecar-second").start(wait_ready=False)
    try:
        second.process.wait_port("127.0.0.1", second.authz_port, timeout=30)  # type: ignore[union-attr]
        seen = []
        ready = False
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not ready:
            ready = second.ready()
            seen.append((ready, second.check(revoked), second.check(valid)))
        assert ready, "the restarted sidecar never became ready"
        assert all(r != 200 for _, r, _ in seen), "a revoked token was allowed during start-up"
        assert second.check(revoked) == 401 and second.check(valid) == 200
        print(f"\nrestart: {len(seen)} checks from port open to ready, answers {sorted(set(seen))}")
    finally:
        second.stop()
