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
        "token_endpoint": f"{base}/oauth2/token",
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "introspection_endpoint": f"{base}/oauth2/introspect",
        "userinfo_endpoint": f"{base}/oauth2/userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": [g.value for g in GrantType],
        # No authorization endpoint: only direct grants, so no response type applies.
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": confidential,
        "scopes_supported": list(scopes_supported),
    }
    if openid:
        doc |= {
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [signing_alg],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "azp", "namespace"],
        }
    return doc
