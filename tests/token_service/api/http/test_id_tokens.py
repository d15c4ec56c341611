"""token_service/id_tokens.py: OpenID Connect ID tokens."""

from __future__ import annotations

import jwt
import pytest
from authlib.oidc.core.util import create_half_hash

from tests.token_service.api.http.conftest import OAuthService
from token_service.id_tokens import at_hash, sign_id_token


@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256", "EdDSA"])
def test_at_hash_matches_authlib(alg: str) -> None:
    """at_hash agrees with Authlib's independent implementation for every signing algorithm."""
    token = "eyJhbGciOiJFUzI1NiJ9.payload.signature"
    assert at_hash(token, alg) == create_half_hash(token, alg).decode()


async def test_id_token_claims_and_signature(oauth_service: OAuthService) -> None:
    """An ID token is signed by the active key, aud/azp = client_id, and carries the namespace."""
    token = sign_id_token(
        oauth_service.core.keys,
        issuer="https://issuer.example",
        subject="bob",
        namespace="shop",
        client_id="web",
        issued_at=1_000,
        ttl_s=60,
        auth_time=999,
        access_token="abc",
    )
    key = oauth_service.core.keys.signing_key()
    claims = jwt.decode(
        token, key.verifier, algorithms=[key.alg], audience="web", options={"verify_exp": False, "verify_iat": False}
    )
    assert claims == {
        "iss": "https://issuer.example",
        "sub": "bob",
        "aud": "web",
        "azp": "web",
        "iat": 1_000,
        "exp": 1_060,
        "auth_time": 999,
        "at_hash": at_hash("abc", key.alg),
        "namespace": "shop",
    }
    assert jwt.get_unverified_header(token) == {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
