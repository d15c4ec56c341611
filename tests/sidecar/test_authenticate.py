"""Check and the facade's CheckAccess authenticate through one path (sidecar/authenticate.py).

Each case runs the same token through the sidecar's ext_authz ``Check``, the facade's in-process
``check`` and the facade's ``CheckAccess`` over gRPC, on a fresh key store and revocation cache
each, and asserts the three verdicts match: a difference means the two enforcement points the
workload can reach disagree about one token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2
from prometheus_client import CollectorRegistry

from native_iam.oauth.v1 import feed_pb2, oauth_pb2, oauth_pb2_grpc
from sidecar import oauth_facade
from sidecar.authorization import Authorizer
from sidecar.decision import Deny
from sidecar.decision_cache import DecisionCache
from sidecar.ext_authz_grpc import GrpcCheck, parse_response
from sidecar.keys import KeyStore
from sidecar.metrics import Metrics
from sidecar.oauth_facade import OAuthFacade
from sidecar.revocations import RevocationCache

from ._feed import Issuer, Kind, revocation
from .conftest import loaded_store, synced_cache
from .test_authorization import Rig, _settings

T, R = feed_pb2.RevocationTarget, feed_pb2.RevocationReason
Status = oauth_pb2.CheckAccessResponse.Status
SCOPE = "orders:read"
LIMIT = 1024  # NATIVE_IAM_MAX_TOKEN_BYTES for these tests (the default is 8192)


@dataclass
class World:
    """One key store and revocation cache, seen by a Check handler and an OAuth facade."""

    keys: KeyStore
    revocations: RevocationCache
    rig: Rig
    facade: OAuthFacade

    def check(self, token: str) -> str:
        """ "allow" or the deny reason of the ext_authz Check."""
        response = self.rig.check(token)
        return "allow" if response.status.code == 0 else response.dynamic_metadata["deny_reason"]

    def check_access(self, token: str) -> str:
        """ "allow" or the deny reason of the facade's in-process CheckAccess."""
        result = self.facade.check(token, (SCOPE,))
        if isinstance(result, Deny):
            return result.reason.value
        return "allow" if result.status == Status.OK else Status.Name(result.status)


def world(issuer: Issuer, jwks: Callable[[], str] | None = None) -> World:
    keys = KeyStore(lambda: ((jwks or issuer.jwks_json)(), 300.0), max_age_s=3600, min_refetch_s=0)
    assert keys.refresh()
    revocations = synced_cache()
    rig = Rig(issuer, keys=keys, revocations=revocations, max_token_bytes=LIMIT)
    facade = OAuthFacade(
        _settings(max_token_bytes=LIMIT),
        keys,
        revocations,
        token_channel=grpc.aio.insecure_channel("127.0.0.1:1"),
    )
    return World(keys, revocations, rig, facade)


@asynccontextmanager
async def served(facade: OAuthFacade) -> AsyncIterator[oauth_pb2_grpc.OAuthStub]:
    """The facade on a real grpc.aio server, as the sidecar serves it to its workload."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((oauth_facade.handler(facade),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield oauth_pb2_grpc.OAuthStub(channel)
    finally:
        await server.stop(0)


async def rpc_verdict(facade: OAuthFacade, token: str) -> str:
    """ "allow", the status name, or the gRPC code of the facade's CheckAccess over the wire."""
    async with served(facade) as stub:
        try:
            response = await stub.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=token, scopes=[SCOPE]))
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
    return "allow" if response.status == Status.OK else Status.Name(response.status)


@pytest.mark.parametrize("excess", [1, 200], ids=["just_over", "far_over"])
async def test_token_over_the_size_limit_is_refused_by_both(issuer: Issuer, excess: int) -> None:
    """A validly signed token longer than NATIVE_IAM_MAX_TOKEN_BYTES is malformed at Check and at
    CheckAccess alike (INVALID_ARGUMENT over gRPC): the facade has no size limit of its own."""
    base = issuer.mint(scope=SCOPE)
    token = issuer.mint(scope=SCOPE, pad="x" * (LIMIT - len(base) + excess))
    assert len(token) > LIMIT
    w = world(issuer)
    assert (w.check(token), w.check_access(token)) == ("malformed", "malformed")
    assert await rpc_verdict(w.facade, token) == "INVALID_ARGUMENT"
    w.keys.close()


async def test_token_over_the_limit_only_in_utf8_bytes_is_refused_by_both(issuer: Issuer) -> None:
    """Fewer characters than the limit but more UTF-8 bytes: malformed at both, never verified."""
    token = "é" * (LIMIT // 2 + 1)
    w = world(issuer)
    assert (w.check(token), w.check_access(token)) == ("malformed", "malformed")
    assert await rpc_verdict(w.facade, token) == "INVALID_ARGUMENT"
    w.keys.close()


@pytest.mark.parametrize("verifier", ["check", "check_access", "rpc"])
async def test_unknown_kid_that_appears_after_a_refetch_is_allowed_by_both(issuer: Issuer, verifier: str) -> None:
    """A token signed with a key published after the sidecar last fetched: each verifier refetches
    the JWKS once (single-flight), finds the key and allows."""
    new = Issuer(kid="k-new")
    published = [issuer.jwks_json()]
    w = world(issuer, jwks=lambda: published[0])
    published[0] = issuer.jwks_json(new.jwk)
    token = new.mint(scope=SCOPE)
    if verifier == "rpc":
        verdict = await rpc_verdict(w.facade, token)
    else:
        verdict = getattr(w, verifier)(token)
    assert verdict == "allow"
    assert w.keys.generation == 2  # the refetch installed the new key
    w.keys.close()


async def test_revoked_jti_cached_earlier_as_allowed_is_denied_by_both(issuer: Issuer) -> None:
    """Both verifiers allow (and cache) a token; its jti is then revoked: both deny it at once."""
    w = world(issuer)
    token = issuer.mint(scope=SCOPE, jti="cached-then-revoked")
    for _ in range(2):  # the second round is answered from the decision cache
        assert (w.check(token), w.check_access(token), await rpc_verdict(w.facade, token)) == ("allow",) * 3
    w.revocations.apply(
        feed_pb2.WatchRevocationsResponse(
            kind=Kind.EVENTS,
            cursor=1,
            revocations=[revocation(1, T.TOKEN, R.TOKEN_DISABLED, jti="cached-then-revoked")],
        )
    )
    assert (w.check(token), w.check_access(token)) == ("revoked", "revoked")
    assert await rpc_verdict(w.facade, token) == "TOKEN_DISABLED"
    w.keys.close()


async def test_a_header_value_allowed_by_check_is_not_a_token_at_check_access(issuer: Issuer) -> None:
    """Check caches by header value, CheckAccess by bare token: after Check allowed
    ``Bearer <token>``, that same text given to CheckAccess as the token is still malformed (as at
    the token service), never answered from Check's cache."""
    w = world(issuer)
    token = issuer.mint(scope=SCOPE)
    assert w.check(token) == "allow"
    assert w.check_access(f"Bearer {token}") == "malformed"
    assert await rpc_verdict(w.facade, f"Bearer {token}") == "TOKEN_INVALID"
    w.keys.close()


def test_the_decision_cache_passed_in_is_the_one_filled(issuer: Issuer) -> None:
    """An empty DecisionCache handed to the Authorizer is used, not silently replaced (it is falsy)."""
    cache = DecisionCache(max_entries=10, ttl_s=60)
    authorizer = Authorizer(
        _settings(), loaded_store(issuer), synced_cache(), Metrics(CollectorRegistry()), cache=cache
    )
    request = external_auth_pb2.CheckRequest()
    request.attributes.request.http.headers["authorization"] = f"Bearer {issuer.mint()}"
    assert parse_response(GrpcCheck(authorizer).check_sync(request)).status.code == 0
    assert len(cache) == 1
