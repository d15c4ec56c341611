"""Authorization server metadata (RFC 8414) and OpenID Connect Discovery §3, from the HTTP config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from token_service.clients import AuthMethod, GrantType

if TYPE_CHECKING:
    from token_service.api.http.routes import HttpConfig

__all__ = ["server_metadata"]


def server_metadata(config: HttpConfig, *, openid: bool) -> dict[str, Any]:
    """The metadata document; ``openid`` adds the OpenID Connect members."""
    base = config.issuer.rstrip("/")
    methods = [m.value for m in AuthMethod]
    secret_methods = [AuthMethod.CLIENT_SECRET_BASIC.value, AuthMethod.CLIENT_SECRET_POST.value]
    doc: dict[str, Any] = {
        "issuer": config.issuer,
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
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "scopes_supported": list(config.scopes_supported),
    }
    if openid:
        doc |= {
            "end_session_endpoint": f"{base}/oauth2/logout",
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [config.signing_alg],
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
