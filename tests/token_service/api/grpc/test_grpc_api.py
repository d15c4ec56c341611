"""The OAuth gRPC API over a real server: every seed status is reachable, bad input is INVALID_ARGUMENT."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest

from native_iam import claims
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.conftest import add_identity
from token_service.admin import service as admin
from token_service.app import TokenServiceApp

Create = oauth_pb2.CreateTokenWithPasswordRequest
CreateStatus = oauth_pb2.CreateTokenWithPasswordResponse
Refresh = oauth_pb2.RefreshTokenRequest
RefreshStatus = oauth_pb2.RefreshTokenResponse
Check = oauth_pb2.CheckAccessRequest
CheckStatus = oauth_pb2.CheckAccessResponse

PASSWORD = "s3cret-pass"
POLICY = ("orders:read", "orders:write", "profile:*")


@pytest.fixture
async def alice(service: TokenServiceApp) -> str:
    await add_identity(service.core, "alice", PASSWORD, POLICY)
    return "alice"


async def login(
    oauth: oauth_pb2_grpc.OAuthStub, *scopes: str, identity: str = "alice"
) -> oauth_pb2.CreateTokenWithPasswordResponse:
    response = await oauth.CreateTokenWithPassword(
        Create(identity=identity, password=PASSWORD, scopes=list(scopes), metadata='{"ip":"10.0.0.7"}')
    )
    assert response.status == CreateStatus.OK, CreateStatus.Status.Name(response.status)
    return response


# --- CreateTokenWithPassword -----------------------------------------------------------------


async def test_create_ok_returns_rfc9068_access_token(oauth: oauth_pb2_grpc.OAuthStub, alice: str) -> None:
    """OK: an at+jwt access token with kid and the RFC 9068 claims, plus a refresh token."""
    response = await login(oauth, "orders:read")
    header = jwt.get_unverified_header(response.access_token)
    assert header["typ"] == "at+jwt" and header["kid"] and header["alg"] == "ES256"
    body = jwt.decode(response.access_token, options={"verify_signature": False})
    assert {"iss", "sub", "aud", "client_id", "iat", "nbf", "exp", "jti", "scope"} <= body.keys()
    assert body["sub"] == "alice" and body["scope"] == "orders:read" and body["token_usage"] == "access_token"
    assert claims.NAMESPACE not in body  # global identity
    assert response.expires_in == 3600 and list(response.scopes) == ["orders:read"]
    refresh = jwt.decode(response.refresh_token, options={"verify_signature": False})
    assert refresh["token_usage"] == "refresh_token"


async def test_create_without_scopes_gets_concrete_policy_scopes(oauth: oauth_pb2_grpc.OAuthStub, alice: str) -> None:
    """Empty scopes: every concrete scope of the policy; the `profile:*` wildcard is not put in the token."""
    response = await login(oauth)
    assert list(response.scopes) == ["orders:read", "orders:write"]


async def test_create_wildcard_grant_allows_matching_scope(oauth: oauth_pb2_grpc.OAuthStub, alice: str) -> None:
    """A scope covered by a `prefix:*` grant may be requested explicitly."""
    response = await login(oauth, "profile:email")
    assert list(response.scopes) == ["profile:email"]


@pytest.mark.parametrize(
    ("identity", "password"),
    [("alice", "wrong-password"), ("nobody", PASSWORD)],
    ids=["wrong-password", "unknown-identity"],
)
async def test_create_credentials_invalid(
    oauth: oauth_pb2_grpc.OAuthStub, alice: str, identity: str, password: str
) -> None:
    """CREDENTIALS_INVALID for a wrong password and for an unknown identity, with empty tokens."""
    response = await oauth.CreateTokenWithPassword(Create(identity=identity, password=password))
    assert response.status == CreateStatus.CREDENTIALS_INVALID
    assert response.access_token == "" and response.refresh_token == ""


async def test_create_password_disabled_is_credentials_invalid(
    oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str
) -> None:
    """A correct password whose password auth is disabled is CREDENTIALS_INVALID."""
    await admin.set_password_enabled(service.core, "", "alice", False)
    response = await oauth.CreateTokenWithPassword(Create(identity="alice", password=PASSWORD))
    assert response.status == CreateStatus.CREDENTIALS_INVALID


async def test_create_namespaced_identity_needs_its_namespace(
    oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp
) -> None:
    """An identity in a namespace is not found globally; with its namespace the token carries it."""
    await add_identity(service.core, "bob", PASSWORD, ("a:b",), namespace="shop")
    missing = await oauth.CreateTokenWithPassword(Create(identity="bob", password=PASSWORD))
    assert missing.status == CreateStatus.CREDENTIALS_INVALID
    found = await oauth.CreateTokenWithPassword(Create(namespace="shop", identity="bob", password=PASSWORD))
    assert found.status == CreateStatus.OK
    assert jwt.decode(found.access_token, options={"verify_signature": False})["namespace"] == "shop"


async def test_create_identity_not_active(
    oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str
) -> None:
    """IDENTITY_NOT_ACTIVE for a disabled identity with the right password."""
    await admin.set_identity_active(service.core, "", "alice", False)
    response = await oauth.CreateTokenWithPassword(Create(identity="alice", password=PASSWORD))
    assert response.status == CreateStatus.IDENTITY_NOT_ACTIVE


async def test_create_unauthorized_scope(oauth: oauth_pb2_grpc.OAuthStub, alice: str) -> None:
    """UNAUTHORIZED when one requested scope is outside the policy (no silent narrowing)."""
    response = await oauth.CreateTokenWithPassword(
        Create(identity="alice", password=PASSWORD, scopes=["orders:read", "billing:read"])
    )
    assert response.status == CreateStatus.UNAUTHORIZED and response.access_token == ""


async def test_metadata_is_stored_with_both_tokens(
    oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str
) -> None:
    """The request's metadata is on the access and the refresh token rows, never in the tokens."""
    response = await login(oauth, "orders:read")
    listed, _ = await admin.list_tokens(service.core, identity="alice")
    assert sorted(t.usage for t in listed) == ["access_token", "refresh_token"]
    assert {t.metadata for t in listed} == {'{"ip":"10.0.0.7"}'}
    assert "10.0.0.7" not in jwt.decode(response.access_token, options={"verify_signature": False}).values()


# --- RefreshToken ----------------------------------------------------------------------------


async def test_refresh_ok_keeps_scopes(oauth: oauth_pb2_grpc.OAuthStub, alice: str) -> None:
    """OK: a new access token with exactly the refresh token's scopes; no new refresh token without rotation."""
    created = await login(oauth, "orders:read", "profile:email")
    response = await oauth.RefreshToken(Refresh(refresh_token=created.refresh_token))
    assert response.status == RefreshStatus.OK
    assert list(response.scopes) == ["orders:read", "profile:email"]
    assert response.access_token != created.access_token and response.refresh_token == ""
    check = await oauth.CheckAccess(Check(access_token=response.access_token, scopes=["profile:email"]))
    assert check.status == CheckStatus.OK


@pytest.mark.parametrize(
    "token", ["", "x" * 10, "a.b.c", "eyJhbGciOiJub25lIn0.e30."], ids=["empty-ish", "junk", "dots", "alg-none"]
)
async def test_refresh_token_invalid(oauth: oauth_pb2_grpc.OAuthStub, token: str) -> None:
    """TOKEN_INVALID for anything that is not a token signed by this service."""
    if not token:
        token = "not-a-jwt"
    response = await oauth.RefreshToken(Refresh(refresh_token=token))
    assert response.status == RefreshStatus.TOKEN_INVALID and response.access_token == ""


async def test_refresh_tampered_signature_is_token_invalid(oauth: oauth_pb2_grpc.OAuthStub, alice: str) -> None:
    """Changing a signature byte gives TOKEN_INVALID."""
    token = (await login(oauth)).refresh_token
    head, body, sig = token.split(".")
    tampered = f"{head}.{body}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    response = await oauth.RefreshToken(Refresh(refresh_token=tampered))
    assert response.status == RefreshStatus.TOKEN_INVALID


async def test_refresh_token_not_found(oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str) -> None:
    """TOKEN_NOT_FOUND after the refresh token was deleted."""
    created = await login(oauth)
    await admin.delete_token(service.core, _jti(created.refresh_token))
    response = await oauth.RefreshToken(Refresh(refresh_token=created.refresh_token))
    assert response.status == RefreshStatus.TOKEN_NOT_FOUND


async def test_refresh_token_disabled(oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str) -> None:
    """TOKEN_DISABLED after the refresh token was disabled."""
    created = await login(oauth)
    await admin.set_token_active(service.core, _jti(created.refresh_token), False)
    response = await oauth.RefreshToken(Refresh(refresh_token=created.refresh_token))
    assert response.status == RefreshStatus.TOKEN_DISABLED


async def test_refresh_token_expired(oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str) -> None:
    """TOKEN_EXPIRED once the refresh token's exp has passed."""
    created = await login(oauth)
    service.core.clock = lambda: time.time() + service.settings.refresh_token_ttl_s + 5
    response = await oauth.RefreshToken(Refresh(refresh_token=created.refresh_token))
    assert response.status == RefreshStatus.TOKEN_EXPIRED


async def test_refresh_with_access_token(oauth: oauth_pb2_grpc.OAuthStub, alice: str) -> None:
    """TOKEN_IS_NOT_REFRESH_TOKEN when an access token is presented."""
    created = await login(oauth)
    response = await oauth.RefreshToken(Refresh(refresh_token=created.access_token))
    assert response.status == RefreshStatus.TOKEN_IS_NOT_REFRESH_TOKEN


async def test_refresh_identity_not_found(
    oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str
) -> None:
    """IDENTITY_NOT_FOUND after the identity was deleted."""
    created = await login(oauth)
    await admin.delete_identity(service.core, "", "alice")
    response = await oauth.RefreshToken(Refresh(refresh_token=created.refresh_token))
    assert response.status == RefreshStatus.IDENTITY_NOT_FOUND


async def test_refresh_identity_not_active(
    oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str
) -> None:
    """IDENTITY_NOT_ACTIVE after the identity was disabled."""
    created = await login(oauth)
    await admin.set_identity_active(service.core, "", "alice", False)
    response = await oauth.RefreshToken(Refresh(refresh_token=created.refresh_token))
    assert response.status == RefreshStatus.IDENTITY_NOT_ACTIVE


async def test_refresh_identity_unauthenticated(
    oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str
) -> None:
    """IDENTITY_UNAUTHENTICATED when the policy no longer grants one of the token's scopes."""
    created = await login(oauth, "orders:read", "orders:write")
    await admin.set_policy(service.core, "", "alice", ["orders:read"])
    response = await oauth.RefreshToken(Refresh(refresh_token=created.refresh_token))
    assert response.status == RefreshStatus.IDENTITY_UNAUTHENTICATED


# --- CheckAccess -----------------------------------------------------------------------------


async def test_check_ok(oauth: oauth_pb2_grpc.OAuthStub, alice: str) -> None:
    """OK with identity, namespace and scopes when every requested scope is carried."""
    created = await login(oauth, "orders:read", "orders:write")
    response = await oauth.CheckAccess(Check(access_token=created.access_token, scopes=["orders:write"]))
    assert response.status == CheckStatus.OK
    assert response.identity == "alice" and list(response.scopes) == ["orders:read", "orders:write"]


async def test_check_unauthorized_names_missing_scope(oauth: oauth_pb2_grpc.OAuthStub, alice: str) -> None:
    """UNAUTHORIZED with a message naming the missing scope (and never the token)."""
    created = await login(oauth, "orders:read")
    response = await oauth.CheckAccess(Check(access_token=created.access_token, scopes=["orders:write"]))
    assert response.status == CheckStatus.UNAUTHORIZED
    assert response.message == "missing scope: orders:write" and created.access_token not in response.message


async def test_check_refresh_token_is_token_invalid(oauth: oauth_pb2_grpc.OAuthStub, alice: str) -> None:
    """A refresh token is not an access token: TOKEN_INVALID."""
    created = await login(oauth)
    response = await oauth.CheckAccess(Check(access_token=created.refresh_token))
    assert response.status == CheckStatus.TOKEN_INVALID and response.message


async def test_check_token_not_found(oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str) -> None:
    """TOKEN_NOT_FOUND after the access token was deleted."""
    created = await login(oauth)
    await admin.delete_token(service.core, _jti(created.access_token))
    response = await oauth.CheckAccess(Check(access_token=created.access_token))
    assert response.status == CheckStatus.TOKEN_NOT_FOUND


async def test_check_token_disabled(oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str) -> None:
    """TOKEN_DISABLED after the access token was disabled; OK again once re-enabled."""
    created = await login(oauth)
    await admin.set_token_active(service.core, _jti(created.access_token), False)
    response = await oauth.CheckAccess(Check(access_token=created.access_token))
    assert response.status == CheckStatus.TOKEN_DISABLED
    await admin.set_token_active(service.core, _jti(created.access_token), True)
    assert (await oauth.CheckAccess(Check(access_token=created.access_token))).status == CheckStatus.OK


async def test_check_identity_disabled_is_token_disabled(
    oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str
) -> None:
    """Disabling the identity disables its tokens (TOKEN_DISABLED)."""
    created = await login(oauth)
    await admin.set_identity_active(service.core, "", "alice", False)
    response = await oauth.CheckAccess(Check(access_token=created.access_token))
    assert response.status == CheckStatus.TOKEN_DISABLED


async def test_check_token_expired(oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str) -> None:
    """TOKEN_EXPIRED after exp."""
    created = await login(oauth)
    service.core.clock = lambda: time.time() + 3601
    response = await oauth.CheckAccess(Check(access_token=created.access_token))
    assert response.status == CheckStatus.TOKEN_EXPIRED


# --- malformed requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        Create(identity="", password="x"),
        Create(identity="a" * 254, password="x"),
        Create(identity="a", password="x" * 1025),
        Create(identity="a", password="x", metadata="m" * 4097),
        Create(identity="a", password="x", scopes=[f"s{i}" for i in range(101)]),
        Create(identity="a", password="x", scopes=["bad scope"]),
    ],
    ids=["missing-identity", "long-identity", "long-password", "long-metadata", "too-many-scopes", "bad-scope"],
)
async def test_create_malformed_is_invalid_argument(
    oauth: oauth_pb2_grpc.OAuthStub, request_: oauth_pb2.CreateTokenWithPasswordRequest
) -> None:
    """Oversized or malformed fields get INVALID_ARGUMENT with a message naming the field."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await oauth.CreateTokenWithPassword(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details()


async def test_invalid_utf8_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    """A string field holding invalid UTF-8 is INVALID_ARGUMENT, not INTERNAL."""
    raw = b"\x12\x02\xff\xfe" + b"\x1a\x01x"  # field 2 (identity) = 0xff 0xfe, field 3 = "x"
    call = channel.unary_unary(
        "/native_iam.oauth.v1.OAuth/CreateTokenWithPassword",
        request_serializer=lambda b: b,
        response_deserializer=oauth_pb2.CreateTokenWithPasswordResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(raw)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "UTF-8" in (info.value.details() or "")


async def test_check_oversized_token_is_invalid_argument(oauth: oauth_pb2_grpc.OAuthStub) -> None:
    """An access token over 8192 bytes is INVALID_ARGUMENT."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await oauth.CheckAccess(Check(access_token="a" * 8193))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _jti(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


async def test_check_after_policy_narrowing_is_token_disabled(
    oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str
) -> None:
    """A token issued before its identity's policy was narrowed is TOKEN_DISABLED (the feed's
    POLICY_CHANGED cut-off); a token issued after the change (a later second) is OK."""
    created = await login(oauth, "orders:read")
    await admin.set_policy(service.core, "", "alice", ["orders:read"])
    response = await oauth.CheckAccess(Check(access_token=created.access_token))
    assert response.status == CheckStatus.TOKEN_DISABLED
    later = time.time() + 2
    service.core.clock = lambda: later
    fresh = await login(oauth, "orders:read")
    assert (await oauth.CheckAccess(Check(access_token=fresh.access_token))).status == CheckStatus.OK


async def test_check_after_identity_deleted_is_token_not_found(
    oauth: oauth_pb2_grpc.OAuthStub, service: TokenServiceApp, alice: str
) -> None:
    """Deleting the identity makes its access tokens TOKEN_NOT_FOUND."""
    created = await login(oauth)
    await admin.delete_identity(service.core, "", "alice")
    response = await oauth.CheckAccess(Check(access_token=created.access_token))
    assert response.status == CheckStatus.TOKEN_NOT_FOUND
