"""Hostile tokens: every way a bearer token can be wrong, built against one real signing key.

One catalogue (:data:`CASES`) is run against the sidecar's Check handler and against the token
service's CheckAccess, so both enforcement points face exactly the same input. Each case builds the
whole ``Authorization`` header value from a :class:`Signer` (the key the verifier trusts and the
claims a valid token would carry) and names the sidecar's deny reason.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import get_default_algorithms

_ALGORITHMS = get_default_algorithms()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class Signer:
    """The key a verifier trusts, and the claims of a token it would accept."""

    private_key: Any
    kid: str
    issuer: str
    audience: str
    sub: str = "alice"
    namespace: str = "shop"
    scope: str = "orders:read"
    alg: str = "ES256"
    extra: dict[str, Any] = field(default_factory=dict)

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.sub,
            "aud": self.audience,
            "client_id": "native-iam",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            "scope": self.scope,
            "token_usage": "access_token",
            **self.extra,
        }
        if self.namespace:
            payload["namespace"] = self.namespace
        payload.update(changes)
        return {k: v for k, v in payload.items() if v is not None}

    def header(self, **changes: Any) -> dict[str, Any]:
        header = {"alg": self.alg, "typ": "at+jwt", "kid": self.kid, **changes}
        return {k: v for k, v in header.items() if v is not None}

    def sign(self, payload: dict[str, Any] | bytes | None = None, **header: Any) -> str:
        """A token properly signed by the trusted key (payload: claims, or raw bytes)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload or self.claims()).encode()
        return self.sign_segments(b64json(self.header(**header)), b64(body))

    def sign_segments(self, header: str, payload: str) -> str:
        """``header.payload.signature`` over the two segments exactly as given (any text, even
        non-canonical base64url): by hand rather than jwt.encode, which refuses to write some of
        the headers tested here."""
        signing_input = f"{header}.{payload}"
        signature = _ALGORITHMS[self.alg].sign(signing_input.encode("utf-8"), self.private_key)
        return f"{signing_input}.{b64(signature)}"

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_jwk(self) -> dict[str, Any]:
        """The public key as the JWKS publishes it (``kid``, ``alg`` and ``use`` included)."""
        jwk = _ALGORITHMS[self.alg].to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_raw(self) -> bytes:
        """The bare public key bytes: the uncompressed EC point (0x04 ‖ x ‖ y), the Ed25519 key,
        or the RSA modulus."""
        public = self.private_key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            return public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        if isinstance(public, rsa.RSAPublicKey):
            n = public.public_numbers().n
            return n.to_bytes((n.bit_length() + 7) // 8, "big")
        return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return f"{b64json(header)}.{b64json(payload)}.{signature}"


def hmac_with_public_key(s: Signer, form: str = "pem") -> str:
    """Algorithm confusion: HS256 keyed with the trusted public key in the form an attacker can get
    it: ``pem`` (SubjectPublicKeyInfo), ``jwk_json`` (the JWKS entry as published, compact JSON),
    ``bare_jwk_json`` (PyJWT's ``to_jwk`` text: key members only) or ``raw`` (the EC point bytes)."""
    import hashlib
    import hmac

    jwk = s.public_jwk()
    forms = {
        "pem": s.public_pem,
        "jwk_json": lambda: json.dumps(jwk, separators=(",", ":")).encode(),
        "bare_jwk_json": lambda: _ALGORITHMS[s.alg].to_jwk(s.private_key.public_key()).encode(),
        "raw": s.public_raw,
    }
    signing_input = f"{b64json(s.header(alg='HS256'))}.{b64json(s.claims())}"
    mac = hmac.new(forms[form](), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def other_key(s: Signer, **header: Any) -> str:
    """Signed by a key the verifier does not trust, claiming the trusted kid (or another)."""
    stranger = ec.generate_private_key(ec.SECP256R1())
    h = {"typ": "at+jwt", "kid": s.kid, **header}
    return jwt.encode(s.claims(), stranger, algorithm="ES256", headers=h)


def nested(obj: dict[str, Any], depth: int) -> bytes:
    """``obj`` as JSON with one more member nested ``depth`` arrays deep (json.dumps would recurse)."""
    return json.dumps(obj)[:-1].encode() + b', "deep": ' + b"[" * depth + b"0" + b"]" * depth + b"}"


def replace_segment(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


def bearer(token: str) -> str:
    return f"Bearer {token}"


@dataclass(frozen=True)
class Case:
    """One hostile Authorization header value and the sidecar reasons that may deny it."""

    name: str
    build: Callable[[Signer], str]
    reasons: frozenset[str]
    # True when the token service's CheckAccess must refuse it as a malformed request
    # (INVALID_ARGUMENT) rather than with a seed status.
    oversized: bool = False


def _case(name: str, build: Callable[[Signer], str], *reasons: str, oversized: bool = False) -> Case:
    return Case(name, build, frozenset(reasons), oversized)


JKU = "http://127.0.0.1:9/jwks.json"  # nothing listens on the discard port: a fetch would fail loudly

CASES: tuple[Case, ...] = (
    _case("alg_none", lambda s: bearer(unsigned(s.header(alg="none"), s.claims())), "signature"),
    _case("alg_none_with_signature", lambda s: bearer(unsigned(s.header(alg="none"), s.claims(), "c2ln")), "signature"),
    _case("alg_None_case", lambda s: bearer(unsigned(s.header(alg="None"), s.claims())), "signature"),
    _case("hs256_with_public_key", lambda s: bearer(hmac_with_public_key(s)), "signature"),
    _case("hs256_with_public_jwk_json", lambda s: bearer(hmac_with_public_key(s, "jwk_json")), "signature"),
    _case("hs256_with_bare_jwk_json", lambda s: bearer(hmac_with_public_key(s, "bare_jwk_json")), "signature"),
    _case("hs256_with_raw_public_point", lambda s: bearer(hmac_with_public_key(s, "raw")), "signature"),
    _case("rs256_header_on_ec_key", lambda s: bearer(unsigned(s.header(alg="RS256"), s.claims(), "AAAA")), "signature"),
    _case("unknown_kid", lambda s: bearer(s.sign(kid="no-such-key")), "unknown_kid"),
    _case("empty_kid", lambda s: bearer(s.sign(kid="")), "unknown_kid"),
    _case("path_kid", lambda s: bearer(s.sign(kid="../../../../etc/passwd")), "unknown_kid"),
    _case("url_kid", lambda s: bearer(s.sign(kid="http://127.0.0.1:9/key")), "unknown_kid"),
    _case("numeric_kid", lambda s: bearer(s.sign(kid=1)), "unknown_kid"),
    _case("no_kid", lambda s: bearer(unsigned({"alg": s.alg, "typ": "at+jwt"}, s.claims(), "AAAA")), "unknown_kid"),
    _case("stranger_key_trusted_kid", lambda s: bearer(other_key(s)), "signature"),
    _case("stranger_key_with_jku", lambda s: bearer(other_key(s, kid="attacker", jku=JKU)), "unknown_kid"),
    _case("stranger_key_with_x5u", lambda s: bearer(other_key(s, x5u=JKU)), "signature"),
    _case("stranger_key_with_embedded_jwk", lambda s: bearer(other_key(s, jwk={"kty": "EC"})), "signature"),
    _case("typ_jwt", lambda s: bearer(s.sign(typ="JWT")), "token_type"),
    _case("typ_missing", lambda s: bearer(s.sign(typ=None)), "token_type"),
    _case("typ_refresh", lambda s: bearer(s.sign(typ="rt+jwt")), "token_type"),
    _case(
        "refresh_token_as_access_token",
        lambda s: bearer(s.sign(s.claims(token_usage="refresh_token"), typ="rt+jwt")),
        "token_type",
    ),
    _case(
        "refresh_usage_with_access_typ", lambda s: bearer(s.sign(s.claims(token_usage="refresh_token"))), "token_type"
    ),
    _case("usage_missing", lambda s: bearer(s.sign(s.claims(token_usage=None))), "token_type"),
    _case("wrong_issuer", lambda s: bearer(s.sign(s.claims(iss="http://evil.test"))), "issuer"),
    _case("wrong_audience", lambda s: bearer(s.sign(s.claims(aud="someone-else"))), "audience"),
    _case("exp_missing", lambda s: bearer(s.sign(s.claims(exp=None))), "malformed"),
    _case("exp_string", lambda s: bearer(s.sign(s.claims(exp="9999999999"))), "malformed"),
    _case("exp_far_past", lambda s: bearer(s.sign(s.claims(exp=1))), "expired"),
    _case("nbf_far_future", lambda s: bearer(s.sign(s.claims(nbf=int(time.time()) + 86400))), "not_yet_valid"),
    # A NumericDate of the wrong type is a malformed token (native_iam/jws.py), not a time verdict.
    _case("nbf_string", lambda s: bearer(s.sign(s.claims(nbf="0"))), "malformed"),
    _case("sub_missing", lambda s: bearer(s.sign(s.claims(sub=None))), "malformed"),
    _case("jti_missing", lambda s: bearer(s.sign(s.claims(jti=None))), "malformed"),
    _case("truncated_signature", lambda s: bearer(s.sign()[:-4]), "signature"),
    _case("truncated_to_two_segments", lambda s: bearer(s.sign().rsplit(".", 1)[0]), "malformed"),
    _case("empty_signature", lambda s: bearer(replace_segment(s.sign(), 2, "")), "signature"),
    _case(
        "padded_header",
        lambda s: bearer(replace_segment(s.sign(), 0, s.sign().split(".")[0] + "==")),
        "malformed",
        "signature",
    ),
    _case(
        "padded_payload",
        lambda s: bearer(replace_segment(s.sign(), 1, s.sign().split(".")[1] + "===")),
        "malformed",
        "signature",
    ),
    _case("excess_padding_signature", lambda s: bearer(s.sign() + "==="), "signature"),
    _case("four_segments", lambda s: bearer(s.sign() + ".AAAA"), "malformed"),
    _case("header_not_json", lambda s: bearer(replace_segment(s.sign(), 0, b64(b"not json"))), "malformed"),
    _case("header_json_array", lambda s: bearer(replace_segment(s.sign(), 0, b64json([1, 2]))), "malformed"),
    _case("header_not_base64", lambda s: bearer(replace_segment(s.sign(), 0, "!!!!")), "malformed"),
    _case("signed_payload_not_json", lambda s: bearer(s.sign(b"\x00\xffnot json")), "malformed"),
    _case("signed_payload_json_array", lambda s: bearer(s.sign(b'["sub", "alice"]')), "malformed"),
    _case("signed_payload_invalid_utf8", lambda s: bearer(s.sign(b'{"sub": "\xff\xfe"}')), "malformed"),
    _case("signed_deeply_nested_claim", lambda s: bearer(s.sign(nested(s.claims(), 2500))), "malformed", "signature"),
    _case(
        "unsigned_deeply_nested_header",
        lambda s: bearer(f"{b64(nested(s.header(), 2500))}.{b64json(s.claims())}.AAAA"),
        "malformed",
        "signature",
    ),
    _case(
        "signed_huge_claims_over_limit",
        lambda s: bearer(s.sign(s.claims(pad="x" * 9000))),
        "malformed",
        oversized=True,
    ),
    _case("oversized_header_value", lambda s: bearer("A" * 200_000), "malformed", oversized=True),
    _case("non_ascii_token", lambda s: bearer(s.sign()[:-2] + "é"), "malformed"),
    _case("non_ascii_scheme", lambda s: "Bëarer " + s.sign(), "missing"),
    _case("duplicate_authorization_merged", lambda s: f"{bearer(s.sign())},{bearer(s.sign())}", "malformed"),
    _case("two_tokens_one_header", lambda s: f"{bearer(s.sign())} {s.sign()}", "malformed"),
    _case("token_with_nul", lambda s: bearer(s.sign() + "\x00"), "malformed"),
    _case("basic_scheme", lambda s: "Basic " + b64(b"alice:secret"), "missing"),
    _case("bearer_without_token", lambda s: "Bearer ", "missing", "malformed"),
    _case("bare_token_without_scheme", lambda s: s.sign(), "malformed", "missing"),
    _case("scope_claim_wrong_type", lambda s: bearer(s.sign(s.claims(scope=["orders:read"]))), "malformed"),
    _case(
        "scope_in_unknown_claim",
        lambda s: bearer(s.sign(s.claims(scope=None, scopes="orders:read"))),
        "insufficient_scope",
    ),
)
