"""The authorization server's metadata (RFC 8414), and OpenID Connect Discovery's additions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from token_service.clients import AuthMethod, GrantType

__all__ = ["server_metadata"]


def server_metadata(
    issuer: str, signing_alg: str, scopes_supported: Sequence[str], *, openid: bool, federated: bool
) -> dict[str, Any]:
    """The metadata document. ``federated``: a cluster issuer is trusted, so the
    ``kubernetes_service_account`` client authentication method is usable and listed."""
    base = issuer.rstrip("/")
    usable = [m for m in AuthMethod if federated or m is not AuthMethod.KUBERNETES_SERVICE_ACCOUNT]
    methods = [m.value for m in usable]
    # Confidential clients only: a public client may not introspect.
    confidential = [m.value for m in usable if m is not AuthMethod.NONE]
    doc: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "token_endpoint": f"{base}/oauth2/token",
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "introspection_endpoint": f"{base}/oauth2/introspect",
        "userinfo_endpoint": f"{base}/oauth2/userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": [g.value for g in GrantType],
        # The authorization code flow only (OAuth 2.1: no implicit, no hybrid), PKCE S256 always.
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        # RFC 9207: every authorization response carries `iss` (mix-up attack defence).
        "authorization_response_iss_parameter_supported": True,
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": confidential,
        "scopes_supported": list(scopes_supported),
    }
    if openid:
        doc |= {
            "end_session_endpoint": f"{base}/oauth2/logout",
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [signing_alg],
            "prompt_values_supported": ["none", "login", "consent"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "at_hash",
                "azp",
                "namespace",
            ],
        }
    return doc
