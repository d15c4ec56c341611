"""The error matrix of the OAuth endpoints: one test per row, asserting status, `error` and headers.

Rows follow RFC 6749 §5.2 (token endpoint), RFC 6750 §3.1 (userinfo), RFC 7009 / RFC 7662
(client authentication at revoke / introspect), plus 413 and 503. Every error response carries
`Cache-Control: no-store`; 401s carry a challenge; 400s carry none.
"""

from __future__ import annotations

import base64

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.token_service.api.http.conftest import PASSWORD, OAuthService, password_grant
from token_service.admin import service as admin
from token_service.store import Store

BASIC_CHALLENGE = 'Basic realm="native-iam", charset="UTF-8"'


def assert_error(response: httpx.Response, status: int, error: str, challenge: str | None = None) -> None:
    """``response`` is an RFC 6749 §5.2 error: status, JSON `error`, no-store and the right challenge."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == error and isinstance(body.get("error_description"), str)
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    assert response.headers.get("www-authenticate") == challenge


async def token(
    http: httpx.AsyncClient, service: OAuthService, data: dict[str, str], client: str = "web"
) -> httpx.Response:
    return await http.post("/oauth2/token", data=data, headers=service.basic(client))


async def refresh_token_of(http: httpx.AsyncClient, service: OAuthService, client: str = "web") -> dict[str, str]:
    response = await password_grant(http, service, client, scope="orders:read")
    assert response.status_code == 200
    return response.json()


# --- invalid_request -------------------------------------------------------------------------


async def test_missing_grant_type(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """No grant_type: 400 invalid_request."""
    assert_error(await token(http, oauth_service, {"username": "alice"}), 400, "invalid_request")


async def test_repeated_parameter(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A parameter sent twice: 400 invalid_request (RFC 6749 §3.2)."""
    response = await http.post(
        "/oauth2/token",
        content=f"grant_type=password&username=alice&password={PASSWORD}&password={PASSWORD}",
        headers={**oauth_service.basic("web"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(response, 400, "invalid_request")


async def test_json_body(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A JSON body (seed 002's style) is not a form: 400 invalid_request."""
    response = await http.post(
        "/oauth2/token",
        json={"grant_type": "password", "username": "alice", "password": PASSWORD},
        headers=oauth_service.basic("web"),
    )
    assert_error(response, 400, "invalid_request")


async def test_non_utf8_charset(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A form declared in another charset: 400 invalid_request (only UTF-8 is read)."""
    response = await http.post(
        "/oauth2/token",
        content=b"grant_type=password&username=alice&password=x",
        headers={**oauth_service.basic("web"), "Content-Type": "application/x-www-form-urlencoded; charset=ISO-8859-1"},
    )
    assert_error(response, 400, "invalid_request")


async def test_invalid_utf8(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A body that is not UTF-8: 400 invalid_request."""
    response = await http.post(
        "/oauth2/token",
        content=b"grant_type=password&username=%ff%fe&password=x",
        headers={**oauth_service.basic("web"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(response, 400, "invalid_request")


async def test_missing_password(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A password grant without password: 400 invalid_request naming it."""
    response = await token(http, oauth_service, {"grant_type": "password", "username": "alice"})
    assert_error(response, 400, "invalid_request")
    assert "password" in response.json()["error_description"]


async def test_missing_refresh_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A refresh grant without refresh_token: 400 invalid_request."""
    assert_error(await token(http, oauth_service, {"grant_type": "refresh_token"}), 400, "invalid_request")


async def test_oversized_body(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A body over 16 KiB: 413 invalid_request."""
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD, "junk": "x" * 20_000}
    assert_error(await token(http, oauth_service, data), 413, "invalid_request")


async def test_two_client_auth_methods(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """Basic plus client_secret in the body: 400 invalid_request (RFC 6749 §2.3)."""
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD, "client_secret": "x"}
    assert_error(await token(http, oauth_service, data), 400, "invalid_request")


# --- invalid_client --------------------------------------------------------------------------


async def test_wrong_secret_basic(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A wrong secret in the Authorization header: 401 invalid_client with a Basic challenge."""
    header = "Basic " + base64.b64encode(b"web:wrong").decode()
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORD},
        headers={"Authorization": header},
    )
    assert_error(response, 401, "invalid_client", BASIC_CHALLENGE)


async def test_wrong_secret_post(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A wrong client_secret in the body: 401 invalid_client (a 401 always has a challenge)."""
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    response = await http.post("/oauth2/token", data={**data, "client_id": "post", "client_secret": "wrong"})
    assert_error(response, 401, "invalid_client", BASIC_CHALLENGE)


async def test_unknown_client(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """An unknown client_id: 401 invalid_client, same description as a wrong secret."""
    header = "Basic " + base64.b64encode(b"nobody:x").decode()
    response = await http.post(
        "/oauth2/token", data={"grant_type": "password", "username": "alice"}, headers={"Authorization": header}
    )
    assert_error(response, 401, "invalid_client", BASIC_CHALLENGE)
    assert response.json()["error_description"] == "client authentication failed"


async def test_no_client_authentication(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """No client credentials at all: 401 invalid_client."""
    response = await http.post("/oauth2/token", data={"grant_type": "password", "username": "alice"})
    assert_error(response, 401, "invalid_client", BASIC_CHALLENGE)


async def test_malformed_basic_header(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """An Authorization header that is not valid Basic: 401 invalid_client."""
    response = await http.post("/oauth2/token", data={"grant_type": "password"}, headers={"Authorization": "Basic %%%"})
    assert_error(response, 401, "invalid_client", BASIC_CHALLENGE)


async def test_wrong_auth_method_for_client(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A client_secret_basic client sending its secret in the body: 401 invalid_client."""
    data = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    response = await http.post(
        "/oauth2/token", data={**data, "client_id": "web", "client_secret": oauth_service.secrets["web"]}
    )
    assert_error(response, 401, "invalid_client", BASIC_CHALLENGE)


async def test_public_client_at_introspection(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A public client (client_id only) may not introspect: 401 invalid_client."""
    response = await http.post("/oauth2/introspect", data={"token": "x", "client_id": "spa"})
    assert_error(response, 401, "invalid_client", BASIC_CHALLENGE)


async def test_revoke_without_client_authentication(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """Revocation requires client authentication (RFC 7009 §2.1): 401 invalid_client."""
    response = await http.post("/oauth2/revoke", data={"token": "x"})
    assert_error(response, 401, "invalid_client", BASIC_CHALLENGE)


# --- invalid_grant ---------------------------------------------------------------------------


async def test_wrong_password(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A wrong password: 400 invalid_grant."""
    response = await token(http, oauth_service, {"grant_type": "password", "username": "alice", "password": "bad"})
    assert_error(response, 400, "invalid_grant")


async def test_unknown_identity_looks_like_wrong_password(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """An unknown username: 400 invalid_grant with the wrong-password description (no enumeration)."""
    wrong = await token(http, oauth_service, {"grant_type": "password", "username": "alice", "password": "bad"})
    unknown = await token(http, oauth_service, {"grant_type": "password", "username": "zed", "password": "bad"})
    assert_error(unknown, 400, "invalid_grant")
    assert unknown.json() == wrong.json()


async def test_inactive_identity(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A disabled identity with the right password: 400 invalid_grant."""
    await admin.set_identity_active(oauth_service.core, "", "alice", False)
    assert_error(await password_grant(http, oauth_service), 400, "invalid_grant")


async def test_malformed_refresh_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A refresh token that is not one of ours: 400 invalid_grant."""
    response = await token(http, oauth_service, {"grant_type": "refresh_token", "refresh_token": "garbage"})
    assert_error(response, 400, "invalid_grant")


async def test_expired_refresh_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """An expired refresh token: 400 invalid_grant."""
    refresh = (await refresh_token_of(http, oauth_service))["refresh_token"]
    exp = jwt.decode(refresh, options={"verify_signature": False})["exp"]
    oauth_service.core.clock = lambda: exp + 1.0
    response = await token(http, oauth_service, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert_error(response, 400, "invalid_grant")
    assert "expired" in response.json()["error_description"]


async def test_disabled_refresh_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A refresh token disabled by an admin: 400 invalid_grant."""
    refresh = (await refresh_token_of(http, oauth_service))["refresh_token"]
    await admin.set_token_active(
        oauth_service.core, jwt.decode(refresh, options={"verify_signature": False})["jti"], False
    )
    response = await token(http, oauth_service, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert_error(response, 400, "invalid_grant")


async def test_deleted_refresh_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A refresh token whose record was deleted: 400 invalid_grant."""
    refresh = (await refresh_token_of(http, oauth_service))["refresh_token"]
    await admin.delete_token(oauth_service.core, jwt.decode(refresh, options={"verify_signature": False})["jti"])
    response = await token(http, oauth_service, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert_error(response, 400, "invalid_grant")


async def test_access_token_as_refresh_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """An access token presented as refresh_token: 400 invalid_grant."""
    access = (await refresh_token_of(http, oauth_service))["access_token"]
    response = await token(http, oauth_service, {"grant_type": "refresh_token", "refresh_token": access})
    assert_error(response, 400, "invalid_grant")


async def test_refresh_token_of_another_client(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A refresh token issued to another client: 400 invalid_grant (RFC 6749 §6)."""
    refresh = (await refresh_token_of(http, oauth_service, "web"))["refresh_token"]
    response = await token(
        http, oauth_service, {"grant_type": "refresh_token", "refresh_token": refresh}, client="rotating"
    )
    assert_error(response, 400, "invalid_grant")


async def test_refresh_after_identity_disabled(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A refresh token of an identity disabled since: 400 invalid_grant."""
    refresh = (await refresh_token_of(http, oauth_service))["refresh_token"]
    await admin.set_identity_active(oauth_service.core, "", "alice", False)
    response = await token(http, oauth_service, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert_error(response, 400, "invalid_grant")


async def test_refresh_after_identity_deleted(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A refresh token of a deleted identity: 400 invalid_grant."""
    refresh = (await refresh_token_of(http, oauth_service))["refresh_token"]
    await admin.delete_identity(oauth_service.core, "", "alice")
    response = await token(http, oauth_service, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert_error(response, 400, "invalid_grant")


async def test_refresh_after_policy_shrank(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A refresh token whose scopes the policy no longer grants: 400 invalid_grant."""
    refresh = (await refresh_token_of(http, oauth_service))["refresh_token"]
    await admin.set_policy(oauth_service.core, "", "alice", ["orders:write"])
    response = await token(http, oauth_service, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert_error(response, 400, "invalid_grant")


# --- unauthorized_client, unsupported_grant_type, invalid_scope ------------------------------


async def test_grant_not_enabled_for_client(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A client without the refresh_token grant asking for it: 400 unauthorized_client."""
    response = await token(http, oauth_service, {"grant_type": "refresh_token", "refresh_token": "x"}, client="pw-only")
    assert_error(response, 400, "unauthorized_client")


async def test_unsupported_grant_type(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """grant_type=implicit (not a token endpoint grant): 400 unsupported_grant_type."""
    assert_error(await token(http, oauth_service, {"grant_type": "implicit"}), 400, "unsupported_grant_type")


async def test_scope_outside_policy(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A scope the identity's policy does not grant: 400 invalid_scope."""
    assert_error(await password_grant(http, oauth_service, scope="admin:all"), 400, "invalid_scope")


async def test_malformed_scope(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A scope with a forbidden character: 400 invalid_scope."""
    assert_error(await password_grant(http, oauth_service, scope='orders:"read'), 400, "invalid_scope")


async def test_refresh_may_not_widen_scope(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A refresh asking for a scope the refresh token lacks: 400 invalid_scope."""
    refresh = (await refresh_token_of(http, oauth_service))["refresh_token"]
    data = {"grant_type": "refresh_token", "refresh_token": refresh, "scope": "orders:read orders:write"}
    assert_error(await token(http, oauth_service, data), 400, "invalid_scope")


async def test_resource_not_an_audience_of_the_client(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A `resource` the client is not configured for: 400 invalid_target (RFC 8707 §2)."""
    assert_error(await password_grant(http, oauth_service, resource="https://elsewhere"), 400, "invalid_target")


# --- bearer token errors at /oauth2/userinfo (RFC 6750 §3.1) ---------------------------------


async def test_userinfo_without_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """No bearer token: 401 with a Bearer challenge that carries no error code."""
    assert_error(await http.get("/oauth2/userinfo"), 401, "invalid_token", 'Bearer realm="native-iam"')


async def test_userinfo_invalid_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A bad bearer token: 401 invalid_token with error="invalid_token" in the challenge."""
    response = await http.get("/oauth2/userinfo", headers={"Authorization": "Bearer garbage"})
    assert_error(response, 401, "invalid_token", 'Bearer realm="native-iam", error="invalid_token"')


@pytest.mark.parametrize("header", ["Bearer a b", "Bearer x y z", "Bearer x,Bearer y"])
async def test_userinfo_malformed_header_is_invalid_request(
    http: httpx.AsyncClient, oauth_service: OAuthService, header: str
) -> None:
    """A header that is not `Bearer <token>`: 400 invalid_request (RFC 6750 §3.1), the answer the
    sidecar gives the same header (sidecar/decision.py BAD_REQUEST), not 401."""
    response = await http.get("/oauth2/userinfo", headers={"Authorization": header})
    assert_error(response, 400, "invalid_request", 'Bearer realm="native-iam", error="invalid_request"')


async def test_userinfo_refresh_token_is_invalid_token(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A refresh token used as bearer token: 401 invalid_token."""
    refresh = (await refresh_token_of(http, oauth_service))["refresh_token"]
    response = await http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {refresh}"})
    assert_error(response, 401, "invalid_token", 'Bearer realm="native-iam", error="invalid_token"')


async def test_userinfo_without_openid_scope(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """An access token without `openid`: 403 insufficient_scope naming openid."""
    access = (await refresh_token_of(http, oauth_service))["access_token"]
    response = await http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert_error(
        response, 403, "insufficient_scope", 'Bearer realm="native-iam", error="insufficient_scope", scope="openid"'
    )


# --- dependency down ---------------------------------------------------------------------------


async def test_database_down_is_503(http: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """The database unreachable: 503 temporarily_unavailable with Retry-After, never a 500."""
    real = oauth_service.core.store
    oauth_service.core.store = Store("sqlite:////nonexistent/dir/native-iam.db")
    try:
        response = await password_grant(http, oauth_service, "web")  # the client itself is still readable
    finally:
        await oauth_service.core.store.close()
        oauth_service.core.store = real
    assert_error(response, 503, "temporarily_unavailable")
    assert response.headers["retry-after"] == "1"


# --- never a 500 -------------------------------------------------------------------------------

_BODIES = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.tuples(
            st.sampled_from(["grant_type", "username", "password", "scope", "refresh_token", "client_id", "x"]),
            st.text(max_size=40),
        ),
        max_size=8,
    ).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")),
)


_AUTHORIZATION = st.one_of(
    st.just(None),
    st.just("web"),  # the real Basic credentials
    # what an HTTP client can send at all: visible ASCII, inner spaces
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30).flatmap(
        lambda word: st.sampled_from([word, f"Basic {word}", f"Bearer {word}", f"basic  {word}"])
    ),
    st.binary(min_size=1, max_size=45).map(lambda raw: "Basic " + base64.b64encode(raw).decode()),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect", "/oauth2/userinfo"]),
    body=_BODIES,
    content_type=st.sampled_from(["application/x-www-form-urlencoded", "text/plain", ""]),
    authorization=_AUTHORIZATION,
)
async def test_random_input_never_500(
    http: httpx.AsyncClient,
    oauth_service: OAuthService,
    path: str,
    body: bytes,
    content_type: str,
    authorization: str | None,
) -> None:
    """Arbitrary bodies, content types and Authorization headers at every POST endpoint never get a 5xx."""
    headers = {"Content-Type": content_type}
    if authorization == "web":
        headers |= oauth_service.basic("web")
    elif authorization is not None:
        headers["Authorization"] = authorization
    response = await http.post(path, content=body, headers=headers)
    assert response.status_code < 500, response.text
