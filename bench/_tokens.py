"""A signing key and tokens made by the harness, in the token service's format (RFC 9068 access
tokens, ES256), for the scenarios that must not depend on a running token service."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from native_iam import claims

ISSUER = "http://bench.native-iam.local"
AUDIENCE = "bench-api"
#: The scope every benchmark route requires.
SCOPE = "bench:read"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(kid=f"bench-{uuid.uuid4().hex[:8]}", private=ec.generate_private_key(ec.SECP256R1()))

    def jwks_json(self) -> str:
        jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        return json.dumps({"keys": [jwk]})

    def access_token(
        self,
        *,
        subject: str = "bench-client",
        scope: str = SCOPE,
        ttl_s: int = 3600,
        jti: str | None = None,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": jti or uuid.uuid4().hex,
            claims.CLIENT_ID: "bench",
            claims.SCOPE: scope,
            claims.TOKEN_USAGE: claims.ACCESS_TOKEN,
        }
        headers = {"kid": self.kid, "typ": claims.ACCESS_TOKEN_TYP}
        return jwt.encode(payload, self.private, algorithm="ES256", headers=headers)


def tamper(token: str) -> str:
    """The same token with a signature that no longer matches (last signature byte changed)."""
    head, _, sig = token.rpartition(".")
    flipped = "A" if sig[-2] != "A" else "B"
    return f"{head}.{sig[:-2]}{flipped}{sig[-1]}"
