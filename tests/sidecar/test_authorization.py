"""sidecar/authorization.py: CheckRequest → CheckResponse, RFC 6750 denials, allow headers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2
from google.protobuf import struct_pb2
from google.rpc import code_pb2
from prometheus_client import CollectorRegistry

from native_iam.oauth.v1 import feed_pb2
from sidecar.authorization import Authorizer
from sidecar.ext_authz_grpc import GrpcCheck, parse_response
from sidecar.keys import KeyStore
from sidecar.metrics import Metrics
from sidecar.revocations import RevocationCache
from sidecar.route_table_file import RouteTableFile
from sidecar.settings import Settings

from ._feed import AUDIENCE, ISSUER, Issuer, Kind, revocation
from .conftest import loaded_store, synced_cache, wait_for

T, R = feed_pb2.RevocationTarget, feed_pb2.RevocationReason


def _settings(**kw: Any) -> Settings:
    return Settings(issuer=ISSUER, audiences=(AUDIENCE,), realm="test", **kw)


class Rig:
    def __init__(
        self,
        issuer: Issuer | None,
        *,
        keys: KeyStore | None = None,
        revocations: RevocationCache | None = None,
        wall_clock: Callable[[], float] = time.time,
        routes: RouteTableFile | None = None,
        tracer: Any = None,
        sample_ratio: float = 0.0,
        **kw: Any,
    ) -> None:
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        assert keys is not None or issuer is not None
        self.keys = keys or loaded_store(issuer)  # type: ignore[arg-type]
        self.revocations = revocations or synced_cache()
        self.authorizer = Authorizer(
            _settings(**kw),
            self.keys,
            self.revocations,
            self.metrics,
            wall_clock=wall_clock,
            tracer=tracer,
            sample_ratio=sample_ratio,
            routes=routes,
        )
        self.grpc = GrpcCheck(self.authorizer)

    def check(
        self,
        token: str | None = None,
        *,
        header: str | None = None,
        method: str = "GET",
        metadata: dict | None = None,
        extensions: dict | None = None,
        headers: dict | None = None,
        path: str = "/orders",
        host: str = "svc.local",
    ) -> Any:
        request = external_auth_pb2.CheckRequest()
        http = request.attributes.request.http
        http.method = method
        http.path = path
        http.host = host
        if token is not None:
            http.headers["authorization"] = f"Bearer {token}"
        if header is not None:
            http.headers["authorization"] = header
        for k, v in (headers or {}).items():
            http.headers[k] = v
        if metadata is not None:
            s = struct_pb2.Struct()
            s.update(metadata)
            request.attributes.route_metadata_context.filter_metadata["native_iam"].CopyFrom(s)
        for k, v in (extensions or {}).items():
            request.attributes.context_extensions[k] = v
        return parse_response(self.grpc.check_sync(request))

    def count(self, result: str, reason: str) -> float:
        return (
            self.registry.get_sample_value("native_iam_sidecar_decisions_total", {"result": result, "reason": reason})
            or 0.0
        )


def _headers(options: Any) -> dict[str, str]:
    return {o.header.key: o.header.value for o in options}


def _denied(response: Any) -> tuple[int, dict[str, str], dict[str, str]]:
    assert response.status.code != code_pb2.OK
    d = response.denied_response
    return d.status.code, _headers(d.headers), json.loads(d.body)


@pytest.fixture
def rig(issuer: Issuer) -> Rig:
    return Rig(issuer)


def test_allow_sets_identity_headers(rig: Rig, issuer: Issuer) -> None:
    """An allowed request carries identity, namespace, scopes and jti headers to the upstream."""
    response = rig.check(issuer.mint("alice", "orders:read b:x", namespace="shop", jti="j1"))
    assert response.status.code == code_pb2.OK
    assert _headers(response.ok_response.headers) == {
        "x-native-iam-identity": "alice",
        "x-native-iam-namespace": "shop",
        "x-native-iam-scopes": "b:x orders:read",
        "x-native-iam-jti": "j1",
        "x-native-iam-client": "test-client",
    }


def test_allow_overwrites_client_sent_identity_headers(rig: Rig, issuer: Issuer) -> None:
    """Identity headers replace any the client sent (OVERWRITE_IF_EXISTS_OR_ADD), so they cannot be forged."""
    response = rig.check(issuer.mint())
    assert all(o.append_action == o.OVERWRITE_IF_EXISTS_OR_ADD for o in response.ok_response.headers)


def test_allow_sets_dynamic_metadata(rig: Rig, issuer: Issuer) -> None:
    """Identity, namespace, scopes and jti are emitted as dynamic metadata for logs and RBAC."""
    response = rig.check(issuer.mint("alice", "a:b", jti="j2"))
    md = dict(response.dynamic_metadata)
    assert md == {"identity": "alice", "namespace": "shop", "scopes": "a:b", "jti": "j2", "client_id": "test-client"}


def test_global_identity_removes_namespace_header(rig: Rig, issuer: Issuer) -> None:
    """A global identity has no namespace: the header is removed rather than forwarded from the client."""
    response = rig.check(issuer.mint(namespace=None))
    assert "x-native-iam-namespace" in response.ok_response.headers_to_remove


def test_strip_token_removes_authorization(issuer: Issuer) -> None:
    """With NATIVE_IAM_STRIP_TOKEN the Authorization header does not reach the upstream."""
    rig = Rig(issuer, strip_token=True)
    assert "authorization" in rig.check(issuer.mint()).ok_response.headers_to_remove


def test_allow_is_counted(rig: Rig, issuer: Issuer) -> None:
    """An allow increments decisions_total{result=allow,reason=token}."""
    rig.check(issuer.mint())
    assert rig.count("allow", "token") == 1


def test_missing_token_is_401_without_error_code(rig: Rig) -> None:
    """RFC 6750 §3.1: no token → 401 with WWW-Authenticate: Bearer realm and no error code."""
    status, headers, body = _denied(rig.check())
    assert status == 401 and headers["www-authenticate"] == 'Bearer realm="test"'
    assert "error" not in body and rig.count("deny", "missing") == 1


def test_malformed_header_is_400_invalid_request(rig: Rig) -> None:
    """A malformed Authorization header → 400 invalid_request."""
    status, headers, body = _denied(rig.check(header="Bearer a b"))
    assert status == 400 and body["error"] == "invalid_request"
    assert 'error="invalid_request"' in headers["www-authenticate"]


def test_bad_token_is_401_invalid_token(rig: Rig) -> None:
    """A bad token → 401 invalid_token with error_description in header and JSON body."""
    status, headers, body = _denied(rig.check("not.a.token"))
    assert status == 401 and body["error"] == "invalid_token" and body["error_description"]
    assert headers["www-authenticate"].startswith('Bearer realm="test", error="invalid_token", error_description="')
    assert headers["content-type"] == "application/json" and rig.count("deny", "malformed") == 1


def test_expired_token_is_401_expired(rig: Rig, issuer: Issuer) -> None:
    """An expired token → 401 invalid_token, reason expired."""
    import time

    status, _, body = _denied(rig.check(issuer.mint(now=time.time() - 3600, ttl=60)))
    assert status == 401 and rig.count("deny", "expired") == 1 and "expired" in body["error_description"]


def test_insufficient_scope_is_403_naming_scopes(rig: Rig, issuer: Issuer) -> None:
    """Missing scopes → 403 insufficient_scope with scope="…" naming what the route needs."""
    status, headers, body = _denied(rig.check(issuer.mint(scope="orders:read"), metadata={"scopes": "orders:write"}))
    assert status == 403 and body["error"] == "insufficient_scope" and body["scope"] == "orders:write"
    assert 'scope="orders:write"' in headers["www-authenticate"]


def test_sufficient_scope_from_extensions_allows(rig: Rig, issuer: Issuer) -> None:
    """context_extensions scopes held by the token → allow."""
    assert rig.check(issuer.mint(scope="a b"), extensions={"scopes": "a b"}).status.code == code_pb2.OK


def test_per_method_requirement_applies(rig: Rig, issuer: Issuer) -> None:
    """A POST needs the POST rule's scopes while GET needs the route's."""
    md = {"scopes": "r", "methods": {"POST": {"scopes": "w"}}}
    token = issuer.mint(scope="r")
    assert rig.check(token, metadata=md).status.code == code_pb2.OK
    assert _denied(rig.check(token, metadata=md, method="POST"))[0] == 403


def test_anonymous_route_allows_without_token_and_strips_identity_headers(rig: Rig) -> None:
    """An anonymous route is allowed without a token, and client-sent identity headers are removed."""
    response = rig.check(metadata={"anonymous": True}, headers={"x-native-iam-identity": "forged"})
    assert response.status.code == code_pb2.OK
    assert "x-native-iam-identity" in response.ok_response.headers_to_remove
    assert rig.count("allow", "anonymous") == 1


def test_invalid_route_is_500_route_invalid(rig: Rig, issuer: Issuer) -> None:
    """A route with invalid requirement metadata is denied (500 route_invalid), never opened."""
    status, _, body = _denied(rig.check(issuer.mint(), metadata={"scope": "typo"}))
    assert status == 500 and body["error"] == "server_error" and rig.count("deny", "route_invalid") == 1


@pytest.mark.parametrize("path", ["/public/../admin", "/%61dmin", "/public/..%2fadmin", "//admin", "/public\\admin"])
@pytest.mark.parametrize("route", [{"anonymous": True}, {"scopes": "orders:read"}], ids=["anonymous", "protected"])
def test_a_path_envoy_did_not_normalise_is_400_whatever_the_route(
    rig: Rig, issuer: Issuer, path: str, route: dict
) -> None:
    """A path that still holds dot-segments, needless %-escapes, encoded or doubled slashes was routed on something
    other than what the workload will see: 400 invalid_request, reason path_not_normalized, on any route."""
    status, headers, body = _denied(rig.check(issuer.mint(), metadata=route, path=path))
    assert status == 400 and body["error"] == "invalid_request", body
    assert 'error="invalid_request"' in headers["www-authenticate"]
    assert rig.count("deny", "path_not_normalized") == 1


def test_a_normalised_path_with_any_query_is_judged_by_its_route(rig: Rig, issuer: Issuer) -> None:
    """The query string is not part of the check: %-escapes and dots there are the workload's business."""
    response = rig.check(issuer.mint(), path="/orders/1?q=%61/../x&r=//")
    assert response.status.code == code_pb2.OK


def test_revoked_token_is_denied_even_after_a_cached_allow(rig: Rig, issuer: Issuer) -> None:
    """A revocation voids the cached allow at once: the next check denies with reason revoked."""
    token = issuer.mint(jti="rev-1")
    assert rig.check(token).status.code == code_pb2.OK
    assert rig.check(token).status.code == code_pb2.OK  # cached
    rig.revocations.apply(
        feed_pb2.WatchRevocationsResponse(
            kind=Kind.EVENTS, cursor=1, revocations=[revocation(1, T.TOKEN, R.TOKEN_DISABLED, jti="rev-1")]
        )
    )
    status, _, body = _denied(rig.check(token))
    assert status == 401 and body["error"] == "invalid_token" and rig.count("deny", "revoked") == 1
    assert dict(rig.check(token).dynamic_metadata)["jti"] == "rev-1"


def test_retired_key_voids_cached_allows_and_is_refused_without_refetch(issuer: Issuer) -> None:
    """A token allowed (and cached) before its key was retired is refused right after, as retired
    (401 invalid_token), whatever its iat, and without a JWKS refetch per forged token."""
    fetches: list[int] = []

    def fetch() -> tuple[str, float]:
        fetches.append(1)
        return issuer.jwks_json(), 300.0

    keys = KeyStore(fetch, max_age_s=3600, min_refetch_s=0)
    assert keys.refresh()
    rig = Rig(issuer, keys=keys, revocations=RevocationCache(max_staleness_s=30, on_key_retired=keys.ban))
    rig.revocations.apply(feed_pb2.WatchRevocationsResponse(kind=Kind.SNAPSHOT, reset=True, synced=True, cursor=0))
    allowed, later = issuer.mint(), issuer.mint(iat=int(time.time()) + 3600)
    assert rig.check(allowed).status.code == code_pb2.OK  # cached
    rig.revocations.apply(
        feed_pb2.WatchRevocationsResponse(
            kind=Kind.EVENTS, cursor=1, revocations=[revocation(1, T.KEY, R.KEY_RETIRED, kid=issuer.kid)]
        )
    )
    assert wait_for(lambda: len(fetches) == 2)  # the ban's own fetch of the replacement key
    for token in (allowed, later):
        denied = rig.check(token)
        assert denied.denied_response.status.code == 401
        assert json.loads(denied.denied_response.body)["error_description"] == "the signing key was retired"
    assert len(fetches) == 2, "a retired kid triggered unknown-kid refetches"


def test_second_check_is_a_cache_hit(rig: Rig, issuer: Issuer) -> None:
    """The same token twice: one miss then one hit."""
    token = issuer.mint()
    rig.check(token)
    rig.check(token)
    hits = rig.registry.get_sample_value("native_iam_sidecar_decision_cache_lookups_total", {"result": "hit"})
    misses = rig.registry.get_sample_value("native_iam_sidecar_decision_cache_lookups_total", {"result": "miss"})
    assert (hits, misses) == (1, 1)


def test_cached_token_still_checks_route_scopes(rig: Rig, issuer: Issuer) -> None:
    """A cache hit still applies the route's requirement."""
    token = issuer.mint(scope="a")
    assert rig.check(token).status.code == code_pb2.OK
    assert _denied(rig.check(token, metadata={"scopes": "b"}))[0] == 403


def test_stale_feed_closed_policy_is_503(issuer: Issuer) -> None:
    """Feed silent beyond the bound with policy closed → 503 feed_stale, even for a valid token."""
    rig = Rig(issuer, revocations=synced_cache(max_staleness_s=0.0), feed_stale_policy="closed")
    status, _, body = _denied(rig.check(issuer.mint()))
    assert status == 503 and body["error"] == "temporarily_unavailable" and rig.count("deny", "feed_stale") == 1


def test_stale_feed_open_policy_keeps_deciding(issuer: Issuer) -> None:
    """Feed stale with policy open → valid tokens still pass."""
    rig = Rig(issuer, revocations=synced_cache(max_staleness_s=0.0), feed_stale_policy="open")
    assert rig.check(issuer.mint()).status.code == code_pb2.OK


def test_never_synced_feed_denies_even_when_open(issuer: Issuer) -> None:
    """Before the first sync nothing is decided from an empty revocation set, whatever the policy."""
    rig = Rig(issuer, revocations=RevocationCache(max_staleness_s=30), feed_stale_policy="open")
    assert _denied(rig.check(issuer.mint()))[0] == 503


def test_keys_unavailable_is_503(issuer: Issuer) -> None:
    """No keys loaded → 503 keys_unavailable."""
    store = KeyStore(lambda: ("{}", 1.0), max_age_s=60, min_refetch_s=0)
    rig = Rig(issuer, keys=store)
    assert _denied(rig.check(issuer.mint()))[0] == 503 and rig.count("deny", "keys_unavailable") == 1


def test_unknown_kid_triggers_a_refetch_and_then_allows(issuer: Issuer) -> None:
    """A token with a new kid causes one JWKS refetch; when the key appears, the token passes."""
    new = Issuer(kid="k2")
    jwks = [issuer.jwks_json()]
    store = KeyStore(lambda: (jwks[0], 300.0), max_age_s=60, min_refetch_s=0)
    store.refresh()
    rig = Rig(issuer, keys=store)
    jwks[0] = issuer.jwks_json(new.jwk)
    assert rig.check(new.mint()).status.code == code_pb2.OK
    store.close()


def test_unknown_kid_after_refetch_is_denied(rig: Rig) -> None:
    """A kid the issuer does not have either → 401 unknown_kid."""
    status, _, _ = _denied(rig.check(Issuer(kid="nope").mint()))
    assert status == 401 and rig.count("deny", "unknown_kid") == 1


def test_async_check_matches_sync(rig: Rig, issuer: Issuer) -> None:
    """check_async (grpc.aio) decides like check_sync, including the unknown-kid refetch."""
    request = external_auth_pb2.CheckRequest()
    request.attributes.request.http.headers["authorization"] = f"Bearer {Issuer(kid='zz').mint()}"
    response = parse_response(asyncio.run(rig.grpc.check_async(request)))
    assert response.denied_response.status.code == 401


def test_internal_error_is_a_500_deny_not_an_allow(rig: Rig, issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug inside the check is answered as a 500 deny with reason internal."""

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("sidecar.decision.verify", boom)
    status, _, body = _denied(rig.check(issuer.mint()))
    assert status == 500 and rig.count("deny", "internal") == 1
    assert "bug" not in json.dumps(body)


def test_deny_logs_reason_and_jti_never_the_token(rig: Rig, issuer: Issuer, caplog: pytest.LogCaptureFixture) -> None:
    """The deny log line names reason and jti; the token itself never appears."""
    token = issuer.mint(iss="http://evil.test", jti="jti-log")
    with caplog.at_level("INFO"):
        rig.check(token)
    record = next(r for r in caplog.records if r.getMessage() == "deny")
    assert record.reason == "issuer" and record.jti == "jti-log"  # type: ignore[attr-defined]
    assert token not in caplog.text and token.split(".")[2] not in caplog.text


def test_keys_past_max_age_void_cached_allows(issuer: Issuer) -> None:
    """When the keys outlive NATIVE_IAM_JWKS_MAX_STALENESS_S, even a cached token is denied keys_unavailable."""
    now = [1000.0]
    store = KeyStore(lambda: (issuer.jwks_json(), 300.0), max_age_s=60, min_refetch_s=0, clock=lambda: now[0])
    store.refresh()
    rig = Rig(issuer, keys=store)
    token = issuer.mint()
    assert rig.check(token).status.code == code_pb2.OK
    now[0] += 61
    assert _denied(rig.check(token))[0] == 503 and rig.count("deny", "keys_unavailable") == 1


def test_repeated_deny_reuses_the_serialized_response(rig: Rig, issuer: Issuer) -> None:
    """The same deny twice is answered with the same bytes (built once), and still counted twice."""
    from sidecar.decision import Deny, Reason
    from sidecar.ext_authz_grpc import encode

    verdicts = rig.authorizer.verdicts
    deny = Deny(Reason.MISSING, "an access token is required")
    assert verdicts.deny(deny) is verdicts.deny(deny)
    assert encode(verdicts.deny(deny)) is encode(verdicts.deny(deny))
    rig.check()
    rig.check()
    assert rig.count("deny", "missing") == 2


def _raw_request(*values: str) -> Any:
    from envoy.config.core.v3 import base_pb2

    request = external_auth_pb2.CheckRequest()
    for value in values:
        request.attributes.request.http.header_map.headers.append(
            base_pb2.HeaderValue(key="authorization", raw_value=value.encode())
        )
    return request


def test_raw_header_map_is_read(rig: Rig, issuer: Issuer) -> None:
    """With Envoy's encode_raw_headers the token is read from header_map."""
    response = parse_response(rig.grpc.check_sync(_raw_request(f"Bearer {issuer.mint()}")))
    assert response.status.code == code_pb2.OK


def test_duplicate_raw_token_headers_are_400(rig: Rig, issuer: Issuer) -> None:
    """Two Authorization headers in header_map are a malformed request, never a choice of one."""
    response = parse_response(rig.grpc.check_sync(_raw_request(f"Bearer {issuer.mint()}", f"Bearer {issuer.mint()}")))
    assert _denied(response)[0] == 400


def test_client_token_names_the_client_never_an_identity(rig: Rig, issuer: Issuer) -> None:
    """A client's own token (sub_kind client) whose sub spells an identity's name: the identity and
    namespace headers are removed (not forwarded from the client), the client header names it."""
    token = issuer.mint("test-client", "a:b", namespace=None, jti="j3", sub_kind="client")
    response = rig.check(token, headers={"x-native-iam-identity": "test-client"})
    assert response.status.code == code_pb2.OK
    assert _headers(response.ok_response.headers) == {
        "x-native-iam-scopes": "a:b",
        "x-native-iam-jti": "j3",
        "x-native-iam-client": "test-client",
    }
    removed = set(response.ok_response.headers_to_remove)
    assert {"x-native-iam-identity", "x-native-iam-namespace"} <= removed
    assert dict(response.dynamic_metadata)["identity"] == ""


def test_route_table_decides_and_unmatched_is_403_route_unmatched(issuer: Issuer, tmp_path: Any) -> None:
    """With a route table and no route metadata: the table's rule applies; a request no rule matches is
    403 route_unmatched with or without a token, counted under that reason."""
    path = tmp_path / "routes.yaml"
    path.write_text(
        "routes:\n"
        "  - match: {prefix: /orders}\n    require: {scopes: orders:read}\n"
        "  - match: {path: /healthz}\n    require: {anonymous: true}\n"
    )
    rig = Rig(issuer, routes=RouteTableFile(str(path)))
    assert rig.check(issuer.mint(scope="orders:read"), path="/orders/1").status.code == code_pb2.OK
    status, _, body = _denied(rig.check(issuer.mint(scope="other"), path="/orders/1"))
    assert status == 403 and body["error"] == "insufficient_scope"
    assert rig.check(path="/healthz").status.code == code_pb2.OK
    for token in (None, issuer.mint(scope="orders:read")):
        status, headers, body = _denied(rig.check(token, path="/unlisted"))
        assert status == 403 and body["error"] == "insufficient_scope" and "scope" not in body
        assert "scope=" not in headers["www-authenticate"]
    assert rig.count("deny", "route_unmatched") == 2
