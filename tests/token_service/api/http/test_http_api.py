"""token_service/api/http/routes.py: the OAuth 2.0 endpoints over a running server (happy paths)."""

from __future__ import annotations

import httpx
import jwt
import pytest

from native_iam import claims
from tests.token_service.api.http.conftest import PASSWORD, OAuthService, password_grant
from token_service.store import Store


def _verify(service: OAuthService, token: str, audience: str | None = None) -> dict[str, object]:
    """Verify ``token`` with the key published in the service's JWKS."""
    jwks = jwt.PyJWKSet.from_json(service.core.keys.jwks_json())
    key = jwks[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(
        token,
        key.key,
        algorithms=[key.algorithm_name],
        audience=audience,
        options={"verify_aud": audience is not None},
    )


async def test_password_grant_response_as_rfc6749(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A password grant answers RFC 6749 §5.1 JSON with no-store headers and a refresh token."""
    response = await password_grant(http, oauth_service, scope="orders:read")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "orders:read"
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    access = _verify(oauth_service, body["access_token"], audience="https://api.example")
    assert access["sub"] == "alice" and access["client_id"] == "web"
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"


async def test_client_audiences_become_aud(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """Tokens carry the client's configured audiences; a client without any gets NATIVE_IAM_AUDIENCE."""
    web = (await password_grant(http, oauth_service, "web", scope="orders:read")).json()
    post = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "password",
            "username": "alice",
            "password": PASSWORD,
            "scope": "orders:read",
            "client_id": "post",
            "client_secret": oauth_service.secrets["post"],
        },
    )
    assert _verify(oauth_service, web["access_token"])["aud"] == "https://api.example"
    assert _verify(oauth_service, post.json()["access_token"])["aud"] == "native-iam"


async def test_resource_narrows_the_audience(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """With `resource` (RFC 8707) the access token's aud is the requested configured audience only."""
    await oauth_service.register("multi", audiences=["https://a.example", "https://b.example"])
    everything = (await password_grant(http, oauth_service, "multi", scope="orders:read")).json()
    narrowed = (
        await password_grant(http, oauth_service, "multi", scope="orders:read", resource="https://b.example")
    ).json()
    assert _verify(oauth_service, everything["access_token"])["aud"] == ["https://a.example", "https://b.example"]
    assert _verify(oauth_service, narrowed["access_token"])["aud"] == "https://b.example"
    refreshed = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": everything["refresh_token"],
            "resource": "https://a.example",
        },
        headers=oauth_service.basic("multi"),
    )
    assert _verify(oauth_service, refreshed.json()["access_token"])["aud"] == "https://a.example"


async def test_no_scope_gets_concrete_policy_scopes(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """Without `scope` the token carries every concrete scope of the policy (wildcards excluded)."""
    body = (await password_grant(http, oauth_service)).json()
    assert body["scope"] == "openid orders:read orders:write"


async def test_namespace_extension_parameter(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """`namespace` selects a namespaced identity; the token carries the namespace claim."""
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "password", "username": "bob", "password": PASSWORD, "namespace": "shop"},
        headers=oauth_service.basic("web"),
    )
    assert response.status_code == 200
    assert _verify(oauth_service, response.json()["access_token"])[claims.NAMESPACE] == "shop"


async def test_no_refresh_token_when_client_may_not_refresh(
    http: httpx.AsyncClient, oauth_service: OAuthService
) -> None:
    """A client without the refresh_token grant gets no refresh_token (Identify's "allow refresh token")."""
    body = (await password_grant(http, oauth_service, "pw-only", scope="orders:read")).json()
    assert "refresh_token" not in body and body["access_token"]


async def test_refresh_grant_keeps_scopes(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A refresh grant issues a new access token with exactly the refresh token's scopes."""
    first = (await password_grant(http, oauth_service, scope="orders:read orders:write")).json()
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=oauth_service.basic("web"),
    )
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["scope"] == "orders:read orders:write" and body["access_token"] != first["access_token"]
    assert "refresh_token" not in body  # rotation is off for this confidential client


async def test_refresh_grant_may_narrow_scope(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """`scope` on a refresh grant narrows the new access token (RFC 6749 §6)."""
    first = (await password_grant(http, oauth_service, scope="orders:read orders:write")).json()
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "scope": "orders:read"},
        headers=oauth_service.basic("web"),
    )
    assert response.json()["scope"] == "orders:read"


async def test_query_string_parameters_are_not_used(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """grant_type and password in the query string are ignored: the body alone counts (RFC 6749 §3.2)."""
    response = await http.post(
        "/oauth2/token",
        params={"grant_type": "password", "password": PASSWORD},
        data={"username": "alice"},
        headers=oauth_service.basic("web"),
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert "grant_type" in response.json()["error_description"]


async def test_openid_scope_adds_id_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """With `openid`, the response has an ID token signed by the JWKS key, aud = client_id."""
    body = (await password_grant(http, oauth_service, scope="openid orders:read")).json()
    id_token = _verify(oauth_service, body["id_token"], audience="web")
    assert id_token["sub"] == "alice" and id_token["azp"] == "web" and id_token["iss"] == "http://localhost:8080"
    assert "auth_time" in id_token and "at_hash" in id_token
    assert jwt.get_unverified_header(body["id_token"])["typ"] == "JWT"


async def test_userinfo_returns_subject(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """GET /oauth2/userinfo with an openid access token returns the subject."""
    body = (await password_grant(http, oauth_service, scope="openid")).json()
    response = await http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "preferred_username": "alice"}


async def test_introspect_active_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """An active access token introspects as active with its scope, client and subject (RFC 7662)."""
    token = (await password_grant(http, oauth_service, scope="orders:read")).json()["access_token"]
    response = await http.post("/oauth2/introspect", data={"token": token}, headers=oauth_service.basic("post"))
    assert response.status_code == 401  # "post" must use client_secret_post, not Basic
    response = await http.post(
        "/oauth2/introspect",
        data={"token": token, "client_id": "post", "client_secret": oauth_service.secrets["post"]},
    )
    body = response.json()
    assert body["active"] is True and body["scope"] == "orders:read"
    assert body["client_id"] == "web" and body["sub"] == "alice" and body["token_type"] == "Bearer"


async def test_introspect_refresh_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A live refresh token introspects as active with token_usage refresh_token."""
    token = (await password_grant(http, oauth_service, scope="orders:read")).json()["refresh_token"]
    body = (await http.post("/oauth2/introspect", data={"token": token}, headers=oauth_service.basic("web"))).json()
    assert body["active"] is True and body["token_usage"] == "refresh_token"


@pytest.mark.parametrize("token", ["garbage", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
async def test_introspect_invalid_token_is_inactive(
    http: httpx.AsyncClient, oauth_service: OAuthService, token: str
) -> None:
    """Anything invalid introspects as exactly {"active": false}."""
    response = await http.post("/oauth2/introspect", data={"token": token}, headers=oauth_service.basic("web"))
    assert response.status_code == 200 and response.json() == {"active": False}


async def test_revoked_access_token_is_inactive(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """POST /oauth2/revoke on an access token: 200, then introspection says inactive."""
    token = (await password_grant(http, oauth_service, scope="orders:read")).json()["access_token"]
    revoke = await http.post("/oauth2/revoke", data={"token": token}, headers=oauth_service.basic("web"))
    assert revoke.status_code == 200
    body = (await http.post("/oauth2/introspect", data={"token": token}, headers=oauth_service.basic("web"))).json()
    assert body == {"active": False}


async def test_revoking_refresh_token_revokes_its_family(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """Revoking a refresh token also kills the access tokens of its grant (RFC 7009 §2.1)."""
    tokens = (await password_grant(http, oauth_service, scope="orders:read")).json()
    await http.post("/oauth2/revoke", data={"token": tokens["refresh_token"]}, headers=oauth_service.basic("web"))
    introspect = await http.post(
        "/oauth2/introspect", data={"token": tokens["access_token"]}, headers=oauth_service.basic("web")
    )
    assert introspect.json() == {"active": False}
    refresh = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=oauth_service.basic("web"),
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


async def test_revoke_unknown_token_is_200(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """RFC 7009 §2.2: an invalid or unknown token still gets 200."""
    response = await http.post("/oauth2/revoke", data={"token": "not-a-token"}, headers=oauth_service.basic("web"))
    assert response.status_code == 200


async def test_revoke_other_clients_token_does_nothing(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A client cannot revoke another client's token: 200, and the token stays active."""
    token = (await password_grant(http, oauth_service, "web", scope="orders:read")).json()["access_token"]
    await http.post("/oauth2/revoke", data={"token": token}, headers=oauth_service.basic("rotating"))
    body = (await http.post("/oauth2/introspect", data={"token": token}, headers=oauth_service.basic("web"))).json()
    assert body["active"] is True


async def test_authorization_server_metadata(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """RFC 8414 metadata names the issuer, endpoints, grants and auth methods."""
    body = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert body["issuer"] == "http://localhost:8080"
    assert body["token_endpoint"] == "http://localhost:8080/oauth2/token"
    assert body["revocation_endpoint"].endswith("/oauth2/revoke")
    assert body["introspection_endpoint"].endswith("/oauth2/introspect")
    assert body["jwks_uri"].endswith("/.well-known/jwks.json")
    assert body["grant_types_supported"] == [
        "password",
        "refresh_token",
        "authorization_code",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    # kubernetes_service_account only with a trusted cluster issuer (test_client_assertions.py)
    assert set(body["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post", "none"}
    assert "openid" in body["scopes_supported"]


async def test_openid_configuration(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """OpenID discovery adds userinfo, subject types and the ID token signing algorithm."""
    body = (await http.get("/.well-known/openid-configuration")).json()
    assert body["userinfo_endpoint"].endswith("/oauth2/userinfo")
    assert body["subject_types_supported"] == ["public"]
    assert body["id_token_signing_alg_values_supported"] == ["ES256"]


async def test_jwks_is_cacheable_and_verifies_tokens(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """The JWKS has a max-age and contains the key that signed an issued token."""
    response = await http.get("/.well-known/jwks.json")
    assert response.status_code == 200 and response.headers["cache-control"] == "public, max-age=300"
    kids = {key["kid"] for key in response.json()["keys"]}
    token = (await password_grant(http, oauth_service, scope="orders:read")).json()["access_token"]
    assert jwt.get_unverified_header(token)["kid"] in kids


async def test_readyz_when_database_and_keys_are_up(http: httpx.AsyncClient) -> None:
    """/readyz is 200 while the database answers and a signing key is loaded."""
    response = await http.get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_503_without_database(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """/readyz is 503 naming the database when it cannot be reached."""
    real = oauth_service.core.store
    oauth_service.core.store = Store("sqlite:////nonexistent/dir/native-iam.db")
    try:
        response = await http.get("/readyz")
    finally:
        await oauth_service.core.store.close()
        oauth_service.core.store = real
    assert response.status_code == 503 and response.json()["reason"] == "database unreachable"


async def test_token_endpoint_rejects_get(http: httpx.AsyncClient) -> None:
    """The token endpoint only accepts POST (405 otherwise)."""
    assert (await http.get("/oauth2/token")).status_code == 405


async def test_denial_is_logged_with_reason_and_client(
    http: httpx.AsyncClient, oauth_service: OAuthService, caplog: pytest.LogCaptureFixture
) -> None:
    """A refusal is logged with endpoint, RFC error, reason and client_id, and never the password."""
    with caplog.at_level("INFO", logger="token_service.api.http.routes"):
        await http.post(
            "/oauth2/token",
            data={"grant_type": "password", "username": "alice", "password": "wrong-Pa55"},
            headers=oauth_service.basic("web"),
        )
    (record,) = [r for r in caplog.records if r.getMessage() == "oauth request denied"]
    assert (record.endpoint, record.error, record.reason, record.client_id) == (  # type: ignore[attr-defined]
        "token",
        "invalid_grant",
        "credentials_invalid",
        "web",
    )
    assert "wrong-Pa55" not in caplog.text
