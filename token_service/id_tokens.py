"""OpenID Connect ID tokens (OpenID Connect Core §2), issued beside access tokens for ``openid``.

An ID token tells the *client* who logged in; its ``aud`` is the client_id (seed 003: logout
validates the ID token's audience against client_id). It is signed with the service's current
signing key, so the JWKS verifies it, and never accepted as an access or refresh token: its
``typ`` is ``JWT`` and it carries no ``token_usage``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Final

import jwt

from native_iam import claims as claim_names
from native_iam import jws
from native_iam.limits import MAX_TOKEN_BYTES
from token_service.errors import UntrustedRedirect
from token_service.keys import KeyRing

__all__ = ["ID_TOKEN_TYP", "OPENID", "at_hash", "read_id_token_hint", "sign_id_token"]

#: The ``openid`` scope asks for an ID token and unlocks /oauth2/userinfo.
OPENID: Final = "openid"

ID_TOKEN_TYP: Final = "JWT"


def sign_id_token(
    keys: KeyRing,
    *,
    issuer: str,
    subject: str,
    namespace: str,
    client_id: str,
    issued_at: int,
    ttl_s: int,
    auth_time: int | None,
    access_token: str,
    nonce: str | None = None,
) -> str:
    """A signed ID token for ``subject``, audience ``client_id``, valid for ``ttl_s`` seconds."""
    key = keys.signing_key()
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": client_id,
        "azp": client_id,
        "iat": issued_at,
        "exp": issued_at + ttl_s,
        "at_hash": at_hash(access_token, key.alg),
    }
    if auth_time is not None:
        payload["auth_time"] = auth_time
    if nonce is not None:  # OpenID Connect Core §3.1.2.1: the authorization request's, unchanged
        payload["nonce"] = nonce
    if namespace:
        payload[claim_names.NAMESPACE] = namespace
    return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid, "typ": ID_TOKEN_TYP})


def at_hash(access_token: str, alg: str) -> str:
    """OpenID Connect Core §3.1.3.6: left half of the access token's hash, base64url.

    The hash is the one of ``alg`` (SHA-256 for ES256, RS256, HS256; SHA-512 for EdDSA/Ed25519).
    """
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def read_id_token_hint(keys: KeyRing, issuer: str, token: str, now: float) -> jws.IdTokenHint:
    """An ``id_token_hint`` (RP-initiated logout) verified by the shared verifier against our keys;
    expired is fine (the spec allows it). :class:`UntrustedRedirect` when it is not one of ours."""

    def key_for(kid: str) -> tuple[str, Any] | None:
        key = keys.verification_key(kid, now)
        return None if key is None else (key.alg, key.verifier)

    try:
        return jws.verify_id_token_hint(
            token, key_for, issuer=issuer, algorithms=claim_names.ALL_ALGORITHMS, max_token_bytes=MAX_TOKEN_BYTES
        )
    except jws.JwsError as exc:
        raise UntrustedRedirect(f"id_token_hint: {exc.message}") from None
