"""A retired (compromised) signing key stops verifying at once, everywhere the feed reaches.

The attacker holds the retired key's private half (read here from the token service's own
database, as a thief would have it) and forges access tokens with it: the kid of the retired key,
a real jti of the victim, and an ``iat`` chosen after the retirement (or far in the future), which
an ``iat`` cut-off would let through. Within about a second of ``RetireKey`` every verifier must
refuse them: the sidecar's ext_authz Check, the sidecar's OAuth facade CheckAccess and the token
service's CheckAccess; a token of that key allowed (and cached) before must be refused too, the
served JWKS must no longer list the key, and a restarted sidecar (fresh JWKS, feed snapshot) must
keep refusing them, as does a restarted token service. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest

from native_iam.admin.v1 import admin_pb2
from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc, oauth_pb2
from token_service.core import Core
from token_service.testing import settings_for_tests

from ._forge import Signer
from ._services import ISSUER, Sidecar, TokenService

ALICE_PASSWORD = "alice-password-for-key-retirement"
Check = oauth_pb2.CheckAccessResponse
#: How soon after RetireKey every verifier must refuse the retired key's tokens.
WITHIN_S = 1.0


async def _stolen_key(db_url: str, kid: str) -> Any:
    """The private key ``kid`` as stored by the token service: what the attacker holds."""
    core = Core.build(settings_for_tests(db_url))
    await core.start()
    try:
        key = core.keys.verification_key(kid)
        assert key is not None, kid
        return key.private
    finally:
        await core.close()


def _published_kids(service: TokenService) -> set[str]:
    with grpc.insecure_channel(service.grpc_address) as channel:
        response = feed_pb2_grpc.FeedStub(channel).GetJwks(feed_pb2.GetJwksRequest(), timeout=5)
    return {k["kid"] for k in json.loads(response.jwks_json)["keys"]}


def _answers(service: TokenService, sidecar: Sidecar, token: str) -> tuple[int, int, int]:
    """(sidecar Check HTTP status, sidecar facade CheckAccess status, token service CheckAccess status)."""
    return sidecar.check(token), sidecar.check_access(token), service.check_access(token)


REFUSED = (401, Check.TOKEN_INVALID, Check.TOKEN_INVALID)


def _until_refused(service: TokenService, sidecar: Sidecar, tokens: list[str], within_s: float) -> float:
    """Seconds until every verifier refused every token; fails (naming the answers) after ``within_s``."""
    started = time.monotonic()
    while (answers := [_answers(service, sidecar, t) for t in tokens]) != [REFUSED] * len(tokens):
        assert time.monotonic() - started < within_s, f"not refused within {within_s} s: {answers}"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_retired_key_stops_verifying_forged_tokens_at_once(
    db: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db_url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "postgres_url")
    with contextlib.ExitStack() as stack:
        service = TokenService(tmp_path, db_url).start()
        stack.callback(service.stop)
        admin_token = service.admin_token()
        service.create_identity(admin_token, "shop", "alice", ALICE_PASSWORD, ("orders:read",))
        legit = service.password_grant("alice", ALICE_PASSWORD, namespace="shop", scopes=("orders:read",))
        kid = jwt.get_unverified_header(legit.access_token)["kid"]
        jti = jwt.decode(legit.access_token, options={"verify_signature": False})["jti"]

        sidecar = Sidecar(tmp_path, service.grpc_address).start()
        stack.callback(lambda: sidecar.stop())
        assert _answers(service, sidecar, legit.access_token) == (200, Check.OK, Check.OK)  # now cached

        thief = Signer(asyncio.run(_stolen_key(db_url, kid)), kid, ISSUER, "native-iam", namespace="shop")
        keys, metadata = service.admin("Keys", admin_token)
        retired_at = time.time()
        signer = keys.RetireKey(admin_pb2.RetireKeyRequest(kid=kid), metadata=metadata, timeout=10).signing_key
        assert signer.kid != kid
        # Forged after the retirement, with the victim's real jti: iat just after the retirement
        # instant, and far in the future (an iat cut-off trusts both).
        forged = [
            thief.sign(thief.claims(jti=jti, iat=int(retired_at) + offset, nbf=int(retired_at)))
            for offset in (2, 22, 3600)
        ]
        took = _until_refused(service, sidecar, [*forged, legit.access_token], WITHIN_S)
        assert kid not in _published_kids(service)
        # Still refused later (not only until a refresh), while the new key's tokens pass.
        time.sleep(2.5)
        assert all(_answers(service, sidecar, t) == REFUSED for t in forged)
        fresh = service.password_grant("alice", ALICE_PASSWORD, namespace="shop", scopes=("orders:read",))
        assert jwt.get_unverified_header(fresh.access_token)["kid"] == signer.kid
        assert _answers(service, sidecar, fresh.access_token) == (200, Check.OK, Check.OK)

        # A restarted sidecar (fresh JWKS fetch, feed snapshot) refuses them from its first answer.
        sidecar.stop()
        sidecar = Sidecar(tmp_path, service.grpc_address, name="sidecar-restarted").start()
        assert all(_answers(service, sidecar, t) == REFUSED for t in [*forged, legit.access_token])
        assert _answers(service, sidecar, fresh.access_token) == (200, Check.OK, Check.OK)

        # The token service killed and restarted (keys reloaded from the store), the sidecar
        # reconnected to it from its cursor: still refused everywhere.
        service.kill()
        service.start()
        _until_refused(service, sidecar, forged, within_s=10.0)
        assert _answers(service, sidecar, fresh.access_token) == (200, Check.OK, Check.OK)
        print(f"\nkey retirement: every verifier refused the retired key's tokens {took:.2f} s after RetireKey")
