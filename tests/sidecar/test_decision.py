"""sidecar/decision.py: token extraction, verification, revocation and scope denials."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.rpc import code_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from native_iam.oauth.v1 import feed_pb2, oauth_pb2
from sidecar import decision
from sidecar.decision import OUTCOMES, REVOCATION_STATUS, Deny, Policy, Principal, Reason
from sidecar.requirements import Rule

from ._feed import Issuer

CheckStatus = oauth_pb2.CheckAccessResponse.Status


def _deny(result: object) -> Deny:
    assert isinstance(result, Deny), result
    return result


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---- extract_token ----


def test_extract_returns_the_bearer_token() -> None:
    """A well-formed 'Bearer <token>' header yields the token."""
    assert decision.extract_token("Bearer abc.def.ghi", require_scheme=True, max_bytes=100) == "abc.def.ghi"


def test_extract_scheme_is_case_insensitive() -> None:
    """RFC 6750 §2.1: the auth scheme is matched case-insensitively."""
    assert decision.extract_token("bEaReR a.b.c", require_scheme=True, max_bytes=100) == "a.b.c"


@pytest.mark.parametrize("value", [None, "", "   ", "Basic dXNlcjpwYXNz"])
def test_extract_missing_when_no_bearer_token(value: str | None) -> None:
    """No header, an empty one, or another scheme means no bearer token at all."""
    assert decision.extract_token(value, require_scheme=True, max_bytes=100) is None


@pytest.mark.parametrize(
    "value",
    ["Bearer", "Bearer a b", "Bearer a.b.c,Bearer d.e.f", "Bearer a\u00e9b", "Bearer a;b", "Bearer " + "a" * 200],
)
def test_extract_malformed_header_is_invalid_request(value: str) -> None:
    """A malformed Authorization header is a 400 invalid_request (reason malformed)."""
    deny = _deny(decision.extract_token(value, require_scheme=True, max_bytes=100))
    assert deny.reason is Reason.MALFORMED
    assert deny.outcome.http_status == 400 and deny.outcome.error == "invalid_request"


def test_extract_custom_header_accepts_a_bare_token() -> None:
    """A custom token header may carry the token without the Bearer scheme."""
    assert decision.extract_token("a.b.c", require_scheme=False, max_bytes=100) == "a.b.c"


# ---- verify ----


def test_valid_token_yields_its_principal(issuer: Issuer, keys, policy: Policy) -> None:
    """A valid access token yields identity, namespace, scopes, jti and kid."""
    token = issuer.mint("alice", "orders:read orders:list", namespace="shop", jti="j-1")
    p = decision.verify(token, keys, policy, time.time())
    assert isinstance(p, Principal)
    assert (p.identity, p.namespace, p.jti, p.kid) == ("alice", "shop", "j-1", "k1")
    assert p.scopes == {"orders:read", "orders:list"}


def test_scopes_come_from_scope_and_scp(issuer: Issuer, keys, policy: Policy) -> None:
    """Scopes are the union of the space-delimited `scope` and the `scp` array."""
    token = issuer.mint(scope="a:read", scp=["b:write", "c:x"])
    p = decision.verify(token, keys, policy, time.time())
    assert isinstance(p, Principal) and p.scopes == {"a:read", "b:write", "c:x"}


def test_global_identity_has_empty_namespace(issuer: Issuer, keys, policy: Policy) -> None:
    """A token without a namespace claim belongs to a global identity (namespace '')."""
    p = decision.verify(issuer.mint(namespace=None), keys, policy, time.time())
    assert isinstance(p, Principal) and p.namespace == ""


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "!!!.b.c", "e30.e30"])
def test_structurally_broken_token_is_malformed(token: str, keys, policy: Policy) -> None:
    """Anything that is not three base64url JSON segments is denied as malformed."""
    assert _deny(decision.verify(token, keys, policy, time.time())).reason is Reason.MALFORMED


def test_non_json_header_is_malformed(keys, policy: Policy) -> None:
    """A header segment that is not a JSON object is malformed."""
    token = f"{_b64(b'[1,2]')}.{_b64(b'{}')}.{_b64(b'sig')}"
    assert _deny(decision.verify(token, keys, policy, time.time())).reason is Reason.MALFORMED


def test_oversized_token_is_malformed(keys, policy: Policy) -> None:
    """A token longer than max_token_bytes is refused before any parsing."""
    assert _deny(decision.verify("a" * 9000, keys, policy, time.time())).reason is Reason.MALFORMED


def test_tampered_payload_fails_signature(issuer: Issuer, keys, policy: Policy) -> None:
    """Changing the claims breaks the signature."""
    h, _, s = issuer.mint(scope="orders:read").split(".")
    forged = _b64(json.dumps({"sub": "mallory", "scope": "*"}).encode())
    deny = _deny(decision.verify(f"{h}.{forged}.{s}", keys, policy, time.time()))
    assert deny.reason is Reason.SIGNATURE


def test_token_signed_by_another_key_with_same_kid_fails_signature(keys, policy: Policy) -> None:
    """A token signed with a different private key under a known kid fails the signature check."""
    token = Issuer(kid="k1").mint()
    assert _deny(decision.verify(token, keys, policy, time.time())).reason is Reason.SIGNATURE


def test_alg_none_is_refused(keys, policy: Policy) -> None:
    """alg 'none' is never accepted."""
    header = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": "k1"}).encode())
    payload = _b64(json.dumps({"sub": "x"}).encode())
    assert _deny(decision.verify(f"{header}.{payload}.", keys, policy, time.time())).reason is Reason.SIGNATURE


def test_hmac_with_the_public_key_is_refused(issuer: Issuer, keys, policy: Policy) -> None:
    """Algorithm confusion: HS256 'signed' with the published public key is refused."""
    public_pem = json.dumps(issuer.jwk).encode()
    header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": "k1"}).encode())
    payload = _b64(json.dumps({"sub": "x"}).encode())
    import hashlib
    import hmac

    sig = _b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert _deny(decision.verify(f"{header}.{payload}.{sig}", keys, policy, time.time())).reason is Reason.SIGNATURE


def test_alg_not_matching_the_key_is_refused(issuer: Issuer, keys, policy: Policy) -> None:
    """An RS256 header on a token whose kid names an EC key is refused."""
    token = issuer.mint()
    h, p, s = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(h + "=="))
    header["alg"] = "RS256"
    bad = f"{_b64(json.dumps(header).encode())}.{p}.{s}"
    assert _deny(decision.verify(bad, keys, policy, time.time())).reason is Reason.SIGNATURE


def test_unknown_kid(issuer: Issuer, keys, policy: Policy) -> None:
    """A kid the key set does not hold is denied as unknown_kid."""
    token = Issuer(kid="other").mint()
    assert _deny(decision.verify(token, keys, policy, time.time())).reason is Reason.UNKNOWN_KID


def test_retired_kid_is_refused_as_retired_even_when_the_key_set_holds_it(issuer: Issuer, keys, policy: Policy) -> None:
    """A kid in ``retired`` is refused (revoked, KEY_RETIRED → TOKEN_INVALID), whatever the token's
    iat and even if a stale key set still holds the key; other kids are unaffected."""
    token = issuer.mint(iat=int(time.time()) + 3600)
    deny = _deny(decision.verify(token, keys, policy, time.time(), retired={issuer.kid}))
    assert deny.reason is Reason.REVOKED and deny.revocation == feed_pb2.RevocationReason.KEY_RETIRED
    assert deny.check_status == CheckStatus.TOKEN_INVALID and deny.outcome.http_status == 401
    assert isinstance(decision.verify(token, keys, policy, time.time(), retired={"other"}), Principal)


def test_missing_kid_is_unknown_kid(issuer: Issuer, keys, policy: Policy) -> None:
    """A token naming no key at all is denied as unknown_kid."""
    token = jwt.encode({"sub": "a"}, issuer.private_key, algorithm="ES256", headers={"typ": "at+jwt"})
    assert _deny(decision.verify(token, keys, policy, time.time())).reason is Reason.UNKNOWN_KID


def test_no_keys_is_keys_unavailable(issuer: Issuer, policy: Policy) -> None:
    """Without usable keys the sidecar cannot verify: keys_unavailable (503)."""
    deny = _deny(decision.verify(issuer.mint(), None, policy, time.time()))
    assert deny.reason is Reason.KEYS_UNAVAILABLE and deny.outcome.http_status == 503


def test_expired_token(issuer: Issuer, keys, policy: Policy) -> None:
    """A token past exp + leeway is expired."""
    now = time.time()
    token = issuer.mint(now=now - 1000, ttl=600)
    assert _deny(decision.verify(token, keys, policy, now)).reason is Reason.EXPIRED


def test_expired_within_leeway_passes(issuer: Issuer, keys, policy: Policy) -> None:
    """A token expired by less than the leeway is still accepted (clock skew)."""
    now = time.time()
    token = issuer.mint(now=now - 610, ttl=600)
    assert isinstance(decision.verify(token, keys, policy, now), Principal)


def test_not_yet_valid_token(issuer: Issuer, keys, policy: Policy) -> None:
    """A token whose nbf is beyond now + leeway is not_yet_valid."""
    now = time.time()
    token = issuer.mint(nbf=int(now + 120))
    assert _deny(decision.verify(token, keys, policy, now)).reason is Reason.NOT_YET_VALID


def test_wrong_issuer(issuer: Issuer, keys, policy: Policy) -> None:
    """A token from another issuer is denied with reason issuer."""
    token = issuer.mint(iss="http://evil.test")
    assert _deny(decision.verify(token, keys, policy, time.time())).reason is Reason.ISSUER


@pytest.mark.parametrize("aud", ["other", ["other", "x"], 5, None])
def test_wrong_audience(aud: object, issuer: Issuer, keys, policy: Policy) -> None:
    """A token whose aud does not name this audience is denied with reason audience."""
    token = issuer.mint(aud=aud)
    assert _deny(decision.verify(token, keys, policy, time.time())).reason is Reason.AUDIENCE


def test_audience_list_containing_ours_passes(issuer: Issuer, keys, policy: Policy) -> None:
    """An aud list that contains this audience is accepted."""
    token = issuer.mint(aud=["other", "native-iam"])
    assert isinstance(decision.verify(token, keys, policy, time.time()), Principal)


def test_wrong_typ_is_token_type(issuer: Issuer, keys, policy: Policy) -> None:
    """typ must be at+jwt (RFC 9068)."""
    token = issuer.mint(headers={"typ": "JWT"})
    assert _deny(decision.verify(token, keys, policy, time.time())).reason is Reason.TOKEN_TYPE


def test_refresh_token_is_token_type(issuer: Issuer, keys, policy: Policy) -> None:
    """A refresh token (token_usage refresh_token) is not accepted as an access token."""
    token = issuer.mint(token_usage="refresh_token")
    deny = _deny(decision.verify(token, keys, policy, time.time()))
    assert deny.reason is Reason.TOKEN_TYPE and deny.outcome.error == "invalid_token"


def test_missing_exp_is_malformed(issuer: Issuer, keys, policy: Policy) -> None:
    """A token without a numeric exp is malformed (it would never expire)."""
    token = issuer.mint(exp="tomorrow")
    assert _deny(decision.verify(token, keys, policy, time.time())).reason is Reason.MALFORMED


def test_missing_jti_is_malformed(issuer: Issuer, keys, policy: Policy) -> None:
    """A token without jti cannot be revoked individually, so it is refused."""
    token = jwt.encode(
        {
            "iss": "http://issuer.test",
            "aud": "native-iam",
            "sub": "a",
            "exp": time.time() + 60,
            "token_usage": "access_token",
        },
        issuer.private_key,
        algorithm="ES256",
        headers={"typ": "at+jwt", "kid": "k1"},
    )
    assert _deny(decision.verify(token, keys, policy, time.time())).reason is Reason.MALFORMED


def test_other_key_types_verify_with_their_own_algorithm(policy: Policy) -> None:
    """An EC P-384 key is not usable (ES256 only for P-256), so its tokens meet an unknown kid."""
    from jwt.algorithms import ECAlgorithm

    from sidecar.keys import parse_jwks

    key = ec.generate_private_key(ec.SECP384R1())
    jwk = {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": "p384"}
    assert parse_jwks(json.dumps({"keys": [jwk]})) == {}


# ---- revocation and scopes ----


def _principal(**kw: object) -> Principal:
    base = dict(
        identity="alice", namespace="shop", scopes=frozenset({"a"}), jti="j", kid="k1", client_id="", iat=1, exp=2
    )
    return Principal(**{**base, **kw})  # type: ignore[arg-type]


def test_revoked_maps_reason_to_seed_status() -> None:
    """A revocation denies with reason revoked and the seed status of its revocation reason."""
    deny = decision.revoked(_principal(), feed_pb2.TOKEN_DELETED)
    assert deny is not None and deny.reason is Reason.REVOKED
    assert deny.check_status == CheckStatus.TOKEN_NOT_FOUND and deny.outcome.http_status == 401


def test_not_revoked_is_none() -> None:
    """No revocation reason: no deny."""
    assert decision.revoked(_principal(), None) is None


def test_insufficient_scope_names_the_needed_scopes() -> None:
    """Missing scopes deny with 403 insufficient_scope naming what the route needs."""
    rule = Rule(alternatives=(frozenset({"a", "b"}),))
    deny = decision.insufficient(_principal(scopes=frozenset({"a"})), rule)
    assert deny is not None and deny.reason is Reason.INSUFFICIENT_SCOPE
    assert deny.needed == ("a", "b")
    assert deny.outcome == (403, "insufficient_scope", CheckStatus.UNAUTHORIZED, code_pb2.PERMISSION_DENIED)


def test_sufficient_scope_is_none() -> None:
    """Scopes satisfying the rule: no deny."""
    assert (
        decision.insufficient(_principal(scopes=frozenset({"a", "b"})), Rule(alternatives=(frozenset({"a"}),))) is None
    )


def test_every_reason_has_an_outcome() -> None:
    """The outcome table covers every reason: 4xx/5xx status, RFC error code, and a non-OK gRPC code
    that matches the HTTP status (an OK code would let Envoy allow the request)."""
    expected_code = {
        400: code_pb2.INVALID_ARGUMENT,
        401: code_pb2.UNAUTHENTICATED,
        403: code_pb2.PERMISSION_DENIED,
        500: code_pb2.INTERNAL,
        503: code_pb2.UNAVAILABLE,
    }
    assert set(OUTCOMES) == set(Reason)
    for reason, outcome in OUTCOMES.items():
        assert outcome.http_status in expected_code, reason
        assert outcome.rpc_code == expected_code[outcome.http_status] != code_pb2.OK, reason
        assert (outcome.error is None) == (reason is Reason.MISSING), reason


def test_every_revocation_reason_has_a_seed_status() -> None:
    """Each RevocationReason of feed.proto maps to a CheckAccess status as documented there."""
    assert set(REVOCATION_STATUS) == set(feed_pb2.RevocationReason.values())
    assert REVOCATION_STATUS[feed_pb2.KEY_RETIRED] == CheckStatus.TOKEN_INVALID
    assert REVOCATION_STATUS[feed_pb2.IDENTITY_DELETED] == CheckStatus.TOKEN_NOT_FOUND


# ---- properties: nothing escapes, nothing unsigned passes ----

_SHARED = Issuer()
_POLICY = Policy(issuer="http://issuer.test", audiences=("native-iam",), leeway_s=30, max_token_bytes=8192)


_segment = st.one_of(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.", max_size=80),
    st.binary(max_size=60).map(_b64),
    st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "sub", "exp", "jti", "aud", "iss"]),
        st.one_of(st.text(max_size=10), st.integers(), st.none(), st.lists(st.integers(), max_size=3)),
        max_size=6,
    ).map(lambda d: _b64(json.dumps(d).encode())),
)


@settings(max_examples=300, deadline=None)
@given(header=_segment, payload=_segment, signature=_segment)
def test_no_forged_token_is_ever_accepted(header: str, payload: str, signature: str) -> None:
    """Random three-part tokens never raise and are never accepted."""
    from sidecar.keys import parse_jwks

    keys = parse_jwks(_SHARED.jwks_json())
    result = decision.verify(f"{header}.{payload}.{signature}", keys, _POLICY, time.time())
    assert isinstance(result, Deny)


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=120))
def test_extract_token_never_raises(value: str) -> None:
    """Any header value yields a token, None or a Deny, never an exception."""
    result = decision.extract_token(value, require_scheme=True, max_bytes=100)
    assert result is None or isinstance(result, Deny | str)


def test_jku_header_is_ignored(keys, policy: Policy) -> None:
    """A token signed by an attacker's key that points `jku` at the attacker's JWKS is not trusted."""
    attacker = Issuer(kid="k1")
    token = attacker.mint(headers={"jku": "http://evil.test/jwks.json", "x5u": "http://evil.test/cert"})
    assert _deny(decision.verify(token, keys, policy, time.time())).reason is Reason.SIGNATURE


@pytest.mark.parametrize("kid", ["../../etc/passwd", "", " ", "k1\x00"])
def test_odd_kids_are_unknown(kid: str, issuer: Issuer, keys, policy: Policy) -> None:
    """Empty, path-like or control-character kids match no key."""
    token = issuer.mint(headers={"kid": kid})
    assert _deny(decision.verify(token, keys, policy, time.time())).reason is Reason.UNKNOWN_KID


def test_every_shared_verifier_failure_is_a_deny_reason() -> None:
    """decision.verify turns each native_iam.jws failure into the deny reason of the same name
    (a failure without one would be a 500 instead of a 401)."""
    from native_iam import jws

    assert all(Reason(f.value) in OUTCOMES for f in jws.Failure)
