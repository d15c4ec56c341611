"""Signing and verifying native_iam JWTs (RFC 9068 access tokens, and refresh tokens).

Verification picks the key by ``kid`` and accepts only that key's algorithm, so ``alg: none``,
algorithm confusion (HS256 signed with a public key) and unknown keys are all TOKEN_INVALID.
Expiry is checked after the signature, so an expired forgery is still TOKEN_INVALID.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from native_iam import claims, jws, scopes
from native_iam.limits import MAX_TOKEN_BYTES
from token_service.errors import TokenExpired, TokenInvalid
from token_service.keys import KeyRing

__all__ = ["TokenClaims", "TokenCodec", "new_jti", "token_hash"]


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
    #: ``claims.IDENTITY_PRINCIPAL`` or ``claims.CLIENT_PRINCIPAL`` (``sub`` is the client id).
    principal: str = claims.IDENTITY_PRINCIPAL

    @property
    def is_client(self) -> bool:
        """A client's own token (client_credentials): it names no identity."""
        return self.principal == claims.CLIENT_PRINCIPAL

    @property
    def identity(self) -> str:
        """The identity the token names: ``sub``, or "" for a client's own token (whose ``sub``
        is a client id, never to be read as an identity of the same name)."""
        return "" if self.is_client else self.sub


class TokenCodec:
    """Signs and verifies tokens with the key ring; knows the issuer and the claim layout."""

    def __init__(self, keys: KeyRing, issuer: str) -> None:
        self.keys = keys
        self.issuer = issuer
        # CheckAccess is asked on behalf of no particular audience (its request names none), and
        # the issuer's own clock needs no leeway.
        any_usage = jws.Rules(
            issuer,
            audiences=None,
            leeway_s=0.0,
            max_token_bytes=MAX_TOKEN_BYTES,
            algorithms=claims.ALL_ALGORITHMS,
            usage=None,
        )
        self._rules = {
            usage: dataclasses.replace(any_usage, usage=usage)
            for usage in (None, claims.ACCESS_TOKEN, claims.REFRESH_TOKEN)
        }

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
        act: Mapping[str, Any] | None = None,
        principal: str = claims.IDENTITY_PRINCIPAL,
    ) -> tuple[str, str]:
        """Return ``(token, kid)`` for the claims given; ``usage`` picks the ``typ`` header;
        ``act`` is the actor of an exchanged token (RFC 8693 §4.1). ``principal``
        CLIENT_PRINCIPAL marks a client's own token (``sub_kind``); an identity's token carries
        no ``sub_kind``, as before issue 13."""
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
        if act is not None:
            payload[claims.ACT] = dict(act)
        if principal != claims.IDENTITY_PRINCIPAL:
            payload[claims.SUB_KIND] = principal
        typ = claims.ACCESS_TOKEN_TYP if usage == claims.ACCESS_TOKEN else claims.REFRESH_TOKEN_TYP
        token = jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid, "typ": typ})
        return token, key.kid

    def verify(self, token: str, now: float | None = None, *, usage: str | None = None) -> TokenClaims:
        """Verify with the one shared verifier (native_iam.jws, the sidecar's too), with no
        leeway and any audience. ``usage`` (``token_usage``) is required when given, checked where
        the sidecar checks it (before the time window), so both refuse a refresh token alike;
        None leaves the check to the caller.

        Raises :class:`TokenInvalid` or :class:`TokenExpired`.
        """
        now = time.time() if now is None else now

        def key_for(kid: str) -> tuple[str, Any] | None:
            key = self.keys.verification_key(kid, now)
            return None if key is None else (key.alg, key.verifier)

        try:
            verified = jws.verify(token, key_for, self._rules[usage], now)
        except jws.JwsError as exc:
            if exc.failure is jws.Failure.EXPIRED:
                raise TokenExpired("token has expired") from None
            if exc.failure is jws.Failure.NOT_YET_VALID:
                raise TokenExpired("token is not valid yet") from None
            raise TokenInvalid(exc.message) from None
        return TokenClaims(
            jti=verified.jti,
            usage=verified.usage,
            sub=verified.sub,
            namespace=verified.namespace,
            scopes=tuple(sorted(verified.scopes)),
            client_id=verified.client_id,
            audience=verified.audience,
            iat=verified.iat,
            nbf=verified.nbf,
            exp=verified.exp,
            kid=verified.kid,
            family=verified.family,
            principal=verified.principal,
        )
