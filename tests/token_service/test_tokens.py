"""Signing and verification: claims, typ, and hostile tokens refused as TOKEN_INVALID."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from native_iam import claims
from token_service.errors import TokenExpired, TokenInvalid
from token_service.keys import KeyRing, generate_key
from token_service.store import Store
from token_service.testing import settings_for_tests
from token_service.tokens import TokenCodec, token_hash

ISSUER = "http://issuer.test"


def _codec(alg: str = "ES256") -> TokenCodec:
    settings = settings_for_tests("sqlite:///unused.db", signing_alg=alg, issuer=ISSUER)
    ring = KeyRing(settings, Store(settings.db_url))
    key = generate_key(alg)
    ring._keys = {key.kid: key}
    return TokenCodec(ring, ISSUER)


def _sign(codec: TokenCodec, usage: str = claims.ACCESS_TOKEN, iat: int | None = None, ttl: int = 60) -> str:
    iat = int(time.time()) if iat is None else iat
    token, _ = codec.sign(
        usage=usage,
        jti="j1",
        sub="alice",
        namespace="ns",
        scopes_=["b", "a"],
        client_id="c",
        audience=["api"],
        iat=iat,
        exp=iat + ttl,
    )
    return token


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA", "HS256"])
def test_round_trip(alg: str) -> None:
    """A token signed with each supported algorithm verifies and yields its claims."""
    codec = _codec(alg)
    parsed = codec.verify(_sign(codec))
    assert (parsed.sub, parsed.namespace, parsed.scopes, parsed.usage) == ("alice", "ns", ("a", "b"), "access_token")


def test_access_token_header_is_rfc9068() -> None:
    """Access tokens carry typ at+jwt and kid; refresh tokens typ rt+jwt."""
    codec = _codec()
    assert jwt.get_unverified_header(_sign(codec))["typ"] == "at+jwt"
    assert jwt.get_unverified_header(_sign(codec, claims.REFRESH_TOKEN))["typ"] == "rt+jwt"


def test_alg_none_is_invalid() -> None:
    """An unsigned token (alg none) with a known kid is TOKEN_INVALID."""
    codec = _codec()
    kid = codec.keys.signing_key().kid
    body = jwt.decode(_sign(codec), options={"verify_signature": False})
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": kid, "typ": "at+jwt"}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=")
    with pytest.raises(TokenInvalid):
        codec.verify(f"{header.decode()}.{payload.decode()}.")


def test_algorithm_confusion_is_invalid() -> None:
    """HS256 signed with the ES256 public key as secret is TOKEN_INVALID."""
    codec = _codec()
    key = codec.keys.signing_key()
    from cryptography.hazmat.primitives import serialization

    public_pem = key.verifier.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    body = jwt.decode(_sign(codec), options={"verify_signature": False})
    forged = _hs256(body, public_pem, key.kid)  # PyJWT itself refuses to do this
    with pytest.raises(TokenInvalid):
        codec.verify(forged)


def _hs256(body: dict, secret: bytes, kid: str) -> str:
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'kid': kid, 'typ': 'at+jwt'}).encode())}.{b64(json.dumps(body).encode())}"
    )
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def test_unknown_kid_is_invalid() -> None:
    """A token from another key ring (unknown kid) is TOKEN_INVALID."""
    with pytest.raises(TokenInvalid):
        _codec().verify(_sign(_codec()))


def test_wrong_issuer_is_invalid() -> None:
    """A token whose iss is not ours is TOKEN_INVALID even when the signature matches."""
    codec = _codec()
    other = TokenCodec(codec.keys, "http://evil.test")
    with pytest.raises(TokenInvalid):
        codec.verify(_sign(other))


def test_expired_and_not_yet_valid() -> None:
    """After exp, and before nbf, verification raises TOKEN_EXPIRED."""
    codec = _codec()
    token = _sign(codec, iat=1_000_000, ttl=60)
    with pytest.raises(TokenExpired):
        codec.verify(token, now=1_000_060)
    with pytest.raises(TokenExpired):
        codec.verify(token, now=999_999)
    assert codec.verify(token, now=1_000_059).jti == "j1"


@pytest.mark.parametrize("token", ["", "a" * 9000, "é.é.é", "a.b", "e30.e30.e30"])
def test_garbage_is_invalid(token: str) -> None:
    """Empty, oversized, non-ASCII and malformed input is TOKEN_INVALID, never another exception."""
    with pytest.raises(TokenInvalid):
        _codec().verify(token)


def test_token_hash_is_sha256_hex() -> None:
    """The stored form of a refresh token is its SHA-256 in hex, not the token."""
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t + "=",  # base64 padding is not allowed in JWS compact form
        lambda t: t.replace(".", "..", 1),  # four segments
        lambda t: t[: t.rindex(".") + 1],  # empty signature
        lambda t: t[:-3],  # truncated signature
        lambda t: t.rsplit(".", 1)[0] + ".!!!!",  # signature outside the alphabet
    ],
    ids=["padded", "extra-segment", "no-signature", "truncated", "bad-alphabet"],
)
def test_mangled_token_is_invalid(mutate) -> None:  # type: ignore[no-untyped-def]
    """Structural damage to a valid token makes it TOKEN_INVALID, never another exception."""
    codec = _codec()
    with pytest.raises(TokenInvalid):
        codec.verify(mutate(_sign(codec)))


def test_header_that_is_not_an_object_is_invalid() -> None:
    """A header segment holding JSON that is not an object is TOKEN_INVALID."""
    codec = _codec()
    token = _sign(codec)
    bad_header = base64.urlsafe_b64encode(b"[1,2]").rstrip(b"=").decode()
    with pytest.raises(TokenInvalid):
        codec.verify(bad_header + token[token.index(".") :])
