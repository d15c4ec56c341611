"""The shape of a native_iam token: claim names and fixed values, shared by issuer and verifiers.

Access tokens follow RFC 9068 (JWT profile for OAuth 2.0 access tokens); refresh tokens use the
same claims with ``token_usage = "refresh_token"`` so that each kind is refused where the other is
expected (seed 001's ``token_usage``).
"""

from __future__ import annotations

from typing import Final

#: JOSE header ``typ`` of an access token (RFC 9068 §2.1).
ACCESS_TOKEN_TYP: Final = "at+jwt"
#: JOSE header ``typ`` of a refresh token. Distinct so that no RFC 9068 validator accepts one.
REFRESH_TOKEN_TYP: Final = "rt+jwt"

#: ``token_usage`` values (seed 001).
ACCESS_TOKEN: Final = "access_token"
REFRESH_TOKEN: Final = "refresh_token"

# Claim names beyond the registered ones (iss, sub, aud, exp, nbf, iat, jti).
CLIENT_ID: Final = "client_id"  # RFC 9068 §2.2
SCOPE: Final = "scope"  # RFC 9068 §2.2.3: space-delimited
SCP: Final = "scp"  # array form some issuers use; verifiers accept it too
TOKEN_USAGE: Final = "token_usage"
NAMESPACE: Final = "namespace"  # absent for a global identity
FAMILY: Final = "fam"  # refresh tokens only: id of the rotation family
ACT: Final = "act"  # RFC 8693 §4.1: the actor of an exchanged token ({"sub": client id, "act": earlier})
#: What kind of principal ``sub`` names. Absent: an identity (every token before issue 13, and
#: every token of a password or refresh grant). ``"client"``: the OAuth client ``client_id``
#: itself (client_credentials, RFC 6749 §4.4), whose ``sub`` equals ``client_id`` and which has
#: no namespace. Without it a client named like an identity would be that identity to a
#: verifier that reads ``sub`` alone (the sidecar's identity header, identity revocations).
SUB_KIND: Final = "sub_kind"
#: ``sub_kind`` values (:data:`SUB_KIND`); a verifier refuses any other value.
IDENTITY_PRINCIPAL: Final = "identity"
CLIENT_PRINCIPAL: Final = "client"

#: The scope that lets an access token open the revocation feed (Feed.WatchRevocations), beside
#: the static NATIVE_IAM_FEED_TOKEN: what a sidecar's workload token carries (docs/security.md).
FEED_SCOPE: Final = "native-iam.feed"

#: Signing algorithms the issuer can use and verifiers accept. Never ``none``; HS256 only where
#: the verifier holds the shared secret (never for a JWKS consumer).
ASYMMETRIC_ALGORITHMS: Final = ("ES256", "RS256", "EdDSA")
ALL_ALGORITHMS: Final = (*ASYMMETRIC_ALGORITHMS, "HS256")
