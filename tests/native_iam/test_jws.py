"""native_iam/jws.py: the one compact-JWS verifier, rule by rule."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from native_iam import jws
from native_iam.jws import Failure, JwsError, Rules
from tests.reliability._forge import Signer, b64, b64json

ISSUER, AUDIENCE, NOW = "http://issuer.test", "native-iam", 2_000_000_000
RULES = Rules(ISSUER, (AUDIENCE,), leeway_s=0.0, max_token_bytes=8192)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(ec.generate_private_key(ec.SECP256R1()), "k1", ISSUER, AUDIENCE)


def lookup(signer: Signer) -> jws.KeyLookup:
    return {signer.kid: ("ES256", signer.private_key.public_key())}.get


def claims(**changes: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "client_id": "c",
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 600,
        "jti": "j1",
        "scope": "orders:read",
        "token_usage": "access_token",
        "namespace": "shop",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def failure(token: str, signer: Signer, rules: Rules = RULES, now: float = NOW) -> Failure:
    with pytest.raises(JwsError) as raised:
        jws.verify(token, lookup(signer), rules, now)
    assert "eyJ" not in raised.value.message  # never the token
    return raised.value.failure


# ---- canonical base64url (RFC 7515 §2) ----


@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", b"\xfb\xff\xfe", bytes(range(256))])
def test_b64decode_round_trips_canonical_text(data: bytes) -> None:
    assert jws.b64decode(b64(data)) == data


@pytest.mark.parametrize(
    "text",
    ["YQ==", "YQ=", "Yq", "YWJ", "+/8", "YW J", "YW\nJj", "YWJj~", "Y", "YWJjZ", "é"],
    ids=["padding", "short_padding", "spare_bits_2", "spare_bits_3", "std_alphabet", "space", "newline", "tilde",
         "one_char", "length_mod_4_is_1", "non_ascii"],
)  # fmt: skip
def test_b64decode_refuses_non_canonical_text(text: str) -> None:
    with pytest.raises(ValueError):
        jws.b64decode(text)


# ---- strict JSON ----


@pytest.mark.parametrize(
    "data",
    [b'{"a":1,"a":2}', b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}', b"[1]", b"null", b"\xef\xbb\xbf{}",
     '{"a":1}'.encode("utf-16"), b'{"a":"\xff"}', b"[" * 5000 + b"]" * 5000, b"{} x", b""],
    ids=["duplicate", "nan", "infinity", "minus_infinity", "array", "null", "bom", "utf16", "invalid_utf8", "deep",
         "trailing_garbage", "empty"],
)  # fmt: skip
def test_parse_json_refuses(data: bytes) -> None:
    with pytest.raises(ValueError):
        jws.parse_json(data)


def test_parse_json_nested_duplicates_are_refused_too() -> None:
    with pytest.raises(ValueError):
        jws.parse_json(b'{"a":{"b":1,"b":1}}')


# ---- typ (RFC 7515 §4.1.9, RFC 9068 §4) ----


@pytest.mark.parametrize(
    ("typ", "usage"),
    [("at+jwt", "access_token"), ("AT+JWT", "access_token"), ("application/at+jwt", "access_token"),
     ("Application/At+Jwt", "access_token"), ("rt+jwt", "refresh_token"), ("jwt", None), ("at+jwt ", None),
     ("application/application/at+jwt", None), ("", None), (None, None), (["at+jwt"], None)],
)  # fmt: skip
def test_typ_usage(typ: Any, usage: str | None) -> None:
    assert jws.typ_usage(typ) == usage


# ---- verify ----


def test_valid_token_is_verified(signer: Signer) -> None:
    v = jws.verify(signer.sign(claims()), lookup(signer), RULES, NOW)
    assert (v.sub, v.jti, v.kid, v.namespace, v.client_id) == ("alice", "j1", "k1", "shop", "c")
    assert (v.iat, v.nbf, v.exp, v.audience, v.scopes) == (NOW - 10, NOW - 10, NOW + 600, (AUDIENCE,), {"orders:read"})


def test_refused_before_parsing_when_too_long(signer: Signer) -> None:
    assert failure(signer.sign(claims(pad="x" * 9000)), signer) is Failure.MALFORMED


@pytest.mark.parametrize("shape", ["a.b", "a.b.c.d", "", "..", "é.é.é"])
def test_not_three_ascii_segments_is_malformed(signer: Signer, shape: str) -> None:
    assert failure(shape, signer) is Failure.MALFORMED


@pytest.mark.parametrize("alg", ["none", "HS256", "ES384", "es256", None, 1])
def test_algorithm_outside_the_allow_list(signer: Signer, alg: Any) -> None:
    assert failure(signer.sign(claims(), alg=alg), signer) is Failure.SIGNATURE


def test_algorithm_comes_from_the_key_not_the_token(signer: Signer) -> None:
    """An EdDSA-labelled token for an ES256 key is refused before any verification."""
    assert failure(signer.sign(claims(), alg="EdDSA"), signer) is Failure.SIGNATURE


def test_eddsa_key_verifies_eddsa() -> None:
    s = Signer(ed25519.Ed25519PrivateKey.generate(), "ed", ISSUER, AUDIENCE, alg="EdDSA")
    keys = {"ed": ("EdDSA", s.private_key.public_key())}.get
    assert jws.verify(s.sign(claims()), keys, RULES, NOW).kid == "ed"


@pytest.mark.parametrize("crit", [["exp"], [], "b64", {}])
def test_any_crit_is_refused(signer: Signer, crit: Any) -> None:
    """RFC 7515 §4.1.11: we understand no extension, so none may be marked critical."""
    assert failure(signer.sign(claims(), crit=crit), signer) is Failure.MALFORMED


def test_no_keys_is_keys_unavailable(signer: Signer) -> None:
    with pytest.raises(JwsError) as raised:
        jws.verify(signer.sign(claims()), None, RULES, NOW)
    assert raised.value.failure is Failure.KEYS_UNAVAILABLE


@pytest.mark.parametrize("kid", ["", "other", 1, ["k1"]])
def test_unknown_or_malformed_kid(signer: Signer, kid: Any) -> None:
    assert failure(signer.sign(claims(), kid=kid), signer) is Failure.UNKNOWN_KID


def _respell(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


def test_signature_spelled_with_spare_bits_is_refused(signer: Signer) -> None:
    """F12: the same signature bytes with non-zero unused bits in the last character."""
    token = signer.sign(claims())
    sig = token.rsplit(".", 1)[1]
    assert len(sig) % 4 == 2  # 64 bytes: the last character carries 4 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = sig[:-1] + alphabet[alphabet.index(sig[-1]) | 1]
    lenient = base64.urlsafe_b64decode(respelled + "==")
    assert lenient == base64.urlsafe_b64decode(sig + "==")  # a lenient decoder sees the same signature
    assert failure(_respell(token, 2, respelled), signer) is Failure.SIGNATURE


def test_signature_in_the_standard_alphabet_is_refused(signer: Signer) -> None:
    for _ in range(100):
        token = signer.sign(claims())
        sig = token.rsplit(".", 1)[1]
        if "-" in sig or "_" in sig:
            break
    std = sig.replace("-", "+").replace("_", "/")
    assert failure(_respell(token, 2, std), signer) is Failure.SIGNATURE


def test_header_not_canonical_is_malformed(signer: Signer) -> None:
    header = b64json({"alg": "ES256", "typ": "at+jwt", "kid": "k1"})
    token = signer.sign_segments(header + "=" * (-len(header) % 4 or 4), b64json(claims()))
    assert failure(token, signer) is Failure.MALFORMED


def test_payload_not_canonical_is_malformed(signer: Signer) -> None:
    payload = base64.b64encode(json.dumps(claims(x="???")).encode()).decode().rstrip("=")
    assert "+" in payload or "/" in payload
    token = signer.sign_segments(b64json({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}), payload)
    assert failure(token, signer) is Failure.MALFORMED


def test_flipped_signature_bit_is_refused(signer: Signer) -> None:
    token = signer.sign(claims())
    raw = bytearray(base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "=="))
    raw[5] ^= 0x10
    assert failure(_respell(token, 2, b64(bytes(raw))), signer) is Failure.SIGNATURE


@pytest.mark.parametrize("typ", ["JWT", "rt+jwt", None, "at+jwt;x=1"])
def test_typ_other_than_access_token(signer: Signer, typ: Any) -> None:
    assert failure(signer.sign(claims(), typ=typ), signer) is Failure.TOKEN_TYPE


@pytest.mark.parametrize("usage", ["refresh_token", "ACCESS_TOKEN", None, ...])
def test_usage_must_match_typ(signer: Signer, usage: Any) -> None:
    assert failure(signer.sign(claims(token_usage=usage)), signer) is Failure.TOKEN_TYPE


def test_refresh_token_when_any_usage_is_accepted(signer: Signer) -> None:
    rules = Rules(ISSUER, None, 0.0, 8192, usage=None)
    token = signer.sign(claims(token_usage="refresh_token", fam="f1"), typ="rt+jwt")
    assert jws.verify(token, lookup(signer), rules, NOW).family == "f1"


@pytest.mark.parametrize("iss", [ISSUER + "/", None, [ISSUER], ...])
def test_issuer(signer: Signer, iss: Any) -> None:
    assert failure(signer.sign(claims(iss=iss)), signer) is Failure.ISSUER


@pytest.mark.parametrize("aud", ["other", ["other"], [], "", None, 5, [AUDIENCE, 5], [[AUDIENCE]], ...])
def test_audience(signer: Signer, aud: Any) -> None:
    assert failure(signer.sign(claims(aud=aud)), signer) is Failure.AUDIENCE


def test_any_audience_still_needs_a_well_formed_one(signer: Signer) -> None:
    rules = Rules(ISSUER, None, 0.0, 8192)
    assert jws.verify(signer.sign(claims(aud=["other"])), lookup(signer), rules, NOW).audience == ("other",)
    with pytest.raises(JwsError):
        jws.verify(signer.sign(claims(aud=[])), lookup(signer), rules, NOW)


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "value",
    [NOW + 0.5, float(NOW), -1, 2**53, 2**63, True, "2000000000", None, [NOW], 1e300],
    ids=["fraction", "float", "negative", "2**53", "2**63", "bool", "string", "null", "list", "1e300"],
)
def test_numeric_dates_are_integers_in_range(signer: Signer, name: str, value: Any) -> None:
    assert failure(signer.sign(claims(**{name: value})), signer) is Failure.MALFORMED


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN"])
def test_exp_json_constants_are_malformed(signer: Signer, literal: str) -> None:
    body = json.dumps(claims(exp=0)).replace('"exp": 0', f'"exp": {literal}').encode()
    assert failure(signer.sign(body), signer) is Failure.MALFORMED


@pytest.mark.parametrize("name", ["exp", "iat"])
def test_exp_and_iat_are_required(signer: Signer, name: str) -> None:
    assert failure(signer.sign(claims(**{name: ...})), signer) is Failure.MALFORMED


def test_nbf_defaults_to_iat(signer: Signer) -> None:
    token = signer.sign(claims(nbf=..., iat=NOW + 5))
    assert failure(token, signer) is Failure.NOT_YET_VALID
    assert jws.verify(token, lookup(signer), RULES, NOW + 5).nbf == NOW + 5


@pytest.mark.parametrize(
    "changes",
    [{"sub": ""}, {"sub": ...}, {"sub": 1}, {"sub": "a\nb"}, {"sub": "\ud800"}, {"jti": ""}, {"jti": ...},
     {"jti": "j" * 65}, {"jti": 1}, {"client_id": None}, {"client_id": 1}, {"namespace": None}, {"namespace": []},
     {"fam": 1}, {"fam": ""}, {"scope": ["orders:read"]}, {"scope": None}, {"scp": [1]}, {"scp": {}}],
    ids=lambda c: "-".join(f"{k}={v!r}"[:20] for k, v in c.items()),
)  # fmt: skip
def test_malformed_claims(signer: Signer, changes: dict[str, Any]) -> None:
    body = json.dumps(claims(**changes)).encode()  # ensure_ascii: a lone surrogate travels as \ud800
    assert failure(signer.sign(body), signer) is Failure.MALFORMED


def test_scopes_from_scope_and_scp_without_invalid_ones(signer: Signer) -> None:
    token = signer.sign(claims(scope="a  b c\u00a0d e\x00", scp=["f", "g h", 'q"']))
    assert jws.verify(token, lookup(signer), RULES, NOW).scopes == {"a", "b", "f"}


@pytest.mark.parametrize(("at", "result"), [(NOW + 599, None), (NOW + 600, Failure.EXPIRED)])
def test_exp_is_exclusive(signer: Signer, at: int, result: Failure | None) -> None:
    token = signer.sign(claims())
    if result is None:
        assert jws.verify(token, lookup(signer), RULES, at).exp == NOW + 600
    else:
        assert failure(token, signer, now=at) is result


@pytest.mark.parametrize(("at", "result"), [(NOW - 11, Failure.NOT_YET_VALID), (NOW - 10, None)])
def test_nbf_is_inclusive(signer: Signer, at: int, result: Failure | None) -> None:
    token = signer.sign(claims())
    if result is None:
        assert jws.verify(token, lookup(signer), RULES, at).nbf == NOW - 10
    else:
        assert failure(token, signer, now=at) is result


def test_leeway_moves_both_edges(signer: Signer) -> None:
    rules = Rules(ISSUER, (AUDIENCE,), 30.0, 8192)
    token = signer.sign(claims())
    assert jws.verify(token, lookup(signer), rules, NOW + 629).exp == NOW + 600
    assert jws.verify(token, lookup(signer), rules, NOW - 40).nbf == NOW - 10
    assert failure(token, signer, rules, now=NOW + 630) is Failure.EXPIRED
    assert failure(token, signer, rules, now=NOW - 41) is Failure.NOT_YET_VALID


def test_duplicate_claim_is_malformed(signer: Signer) -> None:
    body = json.dumps(claims())[:-1].encode() + b', "exp": 1}'
    assert failure(signer.sign(body), signer) is Failure.MALFORMED


def test_jti_travels_with_claim_failures(signer: Signer) -> None:
    with pytest.raises(JwsError) as raised:
        jws.verify(signer.sign(claims(exp=NOW - 1)), lookup(signer), RULES, NOW)
    assert raised.value.failure is Failure.EXPIRED and raised.value.jti == "j1"


# ---- sub_kind (issue 13): a client's own token never passes for an identity ----


def test_token_without_sub_kind_names_an_identity(signer: Signer) -> None:
    """Every token before issue 13 (and every password/refresh grant's) names an identity."""
    assert jws.verify(signer.sign(claims()), lookup(signer), RULES, NOW).principal == "identity"


def test_client_token_names_its_client(signer: Signer) -> None:
    """sub_kind client with sub == client_id and no namespace: a client's own token."""
    token = signer.sign(claims(sub="svc", client_id="svc", namespace=..., sub_kind="client"))
    v = jws.verify(token, lookup(signer), RULES, NOW)
    assert (v.principal, v.sub, v.client_id, v.namespace) == ("client", "svc", "svc", "")


@pytest.mark.parametrize(
    "changes",
    [{"sub_kind": "identity"}, {"sub_kind": "robot"}, {"sub_kind": None}, {"sub_kind": 1},
     {"sub_kind": "client", "sub": "alice", "client_id": "svc", "namespace": ...},
     {"sub_kind": "client", "sub": "svc", "client_id": "svc", "namespace": "shop"}],
    ids=["explicit-identity", "unknown", "null", "number", "sub-not-client-id", "with-namespace"],
)  # fmt: skip
def test_malformed_sub_kind_is_refused(signer: Signer, changes: dict[str, Any]) -> None:
    """Fail closed: any sub_kind but "client" (in a client token's exact shape) is malformed."""
    assert failure(signer.sign(claims(**changes)), signer) is Failure.MALFORMED
