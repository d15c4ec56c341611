"""Signing and verifying native_iam JWTs (RFC 9068 access tokens, and refresh tokens).

Verification picks the key by ``kid`` and accepts only that key's algorithm, so ``alg: none``,
algorithm confusion (HS256 signed with a public key) and unknown keys are all TOKEN_INVALID.
Expiry is checked after the signature, so an expired forgery is still TOKEN_INVALID.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
import jwt.algorithms

from native_iam import claims, scopes
from token_service.errors import TokenExpired, TokenInvalid
from token_service.keys import KeyRing

__all__ = ["MAX_TOKEN_BYTES", "TokenClaims", "TokenCodec", "new_jti", "token_hash"]

#: Longest token accepted anywhere (bytes); longer input is refused before any parsing.
MAX_TOKEN_BYTES = 8192


def new_jti() -> str:
    """A fresh token identifier: 128 random bits, 22 URL-safe characters, never beginning with "-"
    (it is a command-line argument: `native-iam admin tokens disable JTI`; argparse would read a
    leading "-" as an option). Drawing again in that 1-in-64 case keeps the rest uniform."""
    while (jti := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return jti


def token_hash(token: str) -> str:
    """SHA-256 (hex) of a token: what the store keeps instead of a refresh token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The verified claims of a token this service issued."""

    jti: str
    usage: str
    sub: str
    namespace: str
    scopes: tuple[str, ...]
    client_id: str
    audience: tuple[str, ...]
    iat: int
    nbf: int
    exp: int
    kid: str
    family: str | None = None


class TokenCodec:
    """Signs and verifies tokens with the key ring; knows the issuer and the claim layout."""

    def __init__(self, keys: KeyRing, issuer: str) -> None:
        self.keys = keys
        self.issuer = issuer

    def sign(
        self,
        *,
        usage: str,
        jti: str,
        sub: str,
        namespace: str,
        scopes_: Sequence[str],
        client_id: str,
        audience: Sequence[str],
        iat: int,
        exp: int,
        family: str | None = None,
    ) -> tuple[str, str]:
        """Return ``(token, kid)`` for the claims given; ``usage`` picks the ``typ`` header."""
        key = self.keys.signing_key()
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience[0] if len(audience) == 1 else list(audience),
            claims.CLIENT_ID: client_id,
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "jti": jti,
            claims.SCOPE: scopes.format_scopes(scopes_),
            claims.TOKEN_USAGE: usage,
        }
        if namespace:
            payload[claims.NAMESPACE] = namespace
        if family is not None:
            payload[claims.FAMILY] = family
        typ = claims.ACCESS_TOKEN_TYP if usage == claims.ACCESS_TOKEN else claims.REFRESH_TOKEN_TYP
        token = jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid, "typ": typ})
        return token, key.kid

    def verify(self, token: str, now: float | None = None) -> TokenClaims:
        """Verify signature, issuer, time window and claim types; the caller checks ``usage``.

        Raises :class:`TokenInvalid` or :class:`TokenExpired`.
        """
        # Parsed here rather than by jwt.decode(): PyJWT checks the base64 alphabet one character
        # at a time in Python, which cost as much as the ES256 verification itself. The
        # signature is still checked by PyJWT's algorithm objects (cryptography underneath).
        if not token or len(token) > MAX_TOKEN_BYTES or not token.isascii():
            raise TokenInvalid("token is malformed")
        parts = token.split(".")
        if len(parts) != 3 or not all(_SEGMENT.fullmatch(part) for part in parts):
            raise TokenInvalid("token is malformed")
        header = _json_segment(parts[0])
        kid, alg = header.get("kid"), header.get("alg")
        if not isinstance(kid, str) or not isinstance(alg, str) or alg not in claims.ALL_ALGORITHMS:
            raise TokenInvalid("token is not signed by this service")
        key = self.keys.verification_key(kid, now)
        if key is None or key.alg != alg:
            raise TokenInvalid("token is not signed by this service")
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        try:
            valid = _ALGORITHMS[alg].verify(signing_input, key.verifier, _b64decode(parts[2]))
        except (ValueError, TypeError):  # e.g. a signature of the wrong length
            valid = False
        if not valid:
            raise TokenInvalid("token signature is not valid")
        payload = _json_segment(parts[1])
        if payload.get("iss") != self.issuer:
            raise TokenInvalid("token was not issued by this service")
        if not all(name in payload for name in ("sub", "exp", "iat", "jti")):
            raise TokenInvalid("token lacks required claims")
        parsed = _parse(payload, kid, header.get("typ"))
        now = time.time() if now is None else now
        if now >= parsed.exp:
            raise TokenExpired("token has expired")
        if now < parsed.nbf:
            raise TokenExpired("token is not valid yet")
        return parsed


_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_ALGORITHMS = {name: jwt.algorithms.get_default_algorithms()[name] for name in claims.ALL_ALGORITHMS}


def _b64decode(segment: str) -> bytes:
    if len(segment) % 4 == 1:
        raise TokenInvalid("token is malformed")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json_segment(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise TokenInvalid("token is malformed") from None
    if not isinstance(value, dict):
        raise TokenInvalid("token is malformed")
    return value


def _parse(payload: dict[str, Any], kid: str, typ: Any) -> TokenClaims:
    """Check claim types strictly: a signed token of ours always has them right."""
    usage = payload.get(claims.TOKEN_USAGE)
    expected_typ = {claims.ACCESS_TOKEN: claims.ACCESS_TOKEN_TYP, claims.REFRESH_TOKEN: claims.REFRESH_TOKEN_TYP}
    if usage not in expected_typ or typ != expected_typ[usage]:
        raise TokenInvalid("token type is not recognised")
    ints = {name: payload.get(name) for name in ("iat", "nbf", "exp")}
    if ints["nbf"] is None:
        ints["nbf"] = ints["iat"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints.values()):
        raise TokenInvalid("token has malformed time claims")
    sub, jti, scope = payload.get("sub"), payload.get("jti"), payload.get(claims.SCOPE, "")
    namespace, client_id = payload.get(claims.NAMESPACE, ""), payload.get(claims.CLIENT_ID, "")
    aud = payload.get("aud", [])
    audience = (aud,) if isinstance(aud, str) else tuple(aud) if isinstance(aud, list) else None
    family = payload.get(claims.FAMILY)
    if not (
        isinstance(sub, str)
        and isinstance(jti, str)
        and 0 < len(jti) <= 64
        and isinstance(scope, str)
        and isinstance(namespace, str)
        and isinstance(client_id, str)
        and audience is not None
        and all(isinstance(a, str) for a in audience)
        and (family is None or isinstance(family, str))
    ):
        raise TokenInvalid("token has malformed claims")
    return TokenClaims(
        jti=jti,
        usage=usage,
        sub=sub,
        namespace=namespace,
        scopes=tuple(sorted(set(scope.split()))),
        client_id=client_id,
        audience=audience,
        iat=ints["iat"],
        nbf=ints["nbf"],
        exp=ints["exp"],
        kid=kid,
        family=family,
    )
