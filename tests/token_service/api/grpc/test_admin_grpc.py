"""The admin gRPC API: iam:admin bearer tokens only, identities/passwords/policies/tokens/keys."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest

from native_iam.admin.v1 import admin_pb2 as pb
from native_iam.admin.v1 import admin_pb2_grpc
from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from tests.token_service.conftest import add_identity
from token_service.admin import service as admin
from token_service.app import TokenServiceApp
from token_service.cli import bootstrap_admin
from token_service.grants import create_token_with_password

ADMIN_PASSWORD = "admin-pass-123"
CheckStatus = oauth_pb2.CheckAccessResponse


@pytest.fixture
async def admin_token(service: TokenServiceApp) -> str:
    await bootstrap_admin(service.core, "root", ADMIN_PASSWORD)
    issued = await create_token_with_password(
        service.core, namespace="", identity="root", password=ADMIN_PASSWORD, scopes=["iam:admin"]
    )
    return issued.access_token


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def identities(channel: grpc.aio.Channel) -> admin_pb2_grpc.IdentitiesStub:
    return admin_pb2_grpc.IdentitiesStub(channel)


@pytest.fixture
def tokens(channel: grpc.aio.Channel) -> admin_pb2_grpc.TokensStub:
    return admin_pb2_grpc.TokensStub(channel)


@pytest.fixture
def keys_admin(channel: grpc.aio.Channel) -> admin_pb2_grpc.KeysStub:
    return admin_pb2_grpc.KeysStub(channel)


async def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value.code()


# --- authorization ---------------------------------------------------------------------------


async def test_no_token_is_unauthenticated(identities: admin_pb2_grpc.IdentitiesStub) -> None:
    """Without authorization metadata every admin call is UNAUTHENTICATED."""
    assert await _code(identities.ListIdentities(pb.ListIdentitiesRequest())) == grpc.StatusCode.UNAUTHENTICATED


async def test_garbage_token_is_unauthenticated(identities: admin_pb2_grpc.IdentitiesStub) -> None:
    """A bearer value that is not our token is UNAUTHENTICATED."""
    call = identities.ListIdentities(pb.ListIdentitiesRequest(), metadata=_md("not.a.token"))
    assert await _code(call) == grpc.StatusCode.UNAUTHENTICATED


async def test_token_without_admin_scope_is_permission_denied(
    service: TokenServiceApp, identities: admin_pb2_grpc.IdentitiesStub
) -> None:
    """A valid access token without iam:admin is PERMISSION_DENIED."""
    await add_identity(service.core, "user", "pw-123456", ("orders:read",))
    issued = await create_token_with_password(service.core, namespace="", identity="user", password="pw-123456")
    call = identities.ListIdentities(pb.ListIdentitiesRequest(), metadata=_md(issued.access_token))
    assert await _code(call) == grpc.StatusCode.PERMISSION_DENIED


async def test_expired_admin_token_is_unauthenticated(
    service: TokenServiceApp, identities: admin_pb2_grpc.IdentitiesStub, admin_token: str
) -> None:
    """An admin token past its exp is refused."""
    service.core.clock = lambda: time.time() + 3601
    call = identities.ListIdentities(pb.ListIdentitiesRequest(), metadata=_md(admin_token))
    assert await _code(call) == grpc.StatusCode.UNAUTHENTICATED


async def test_revoked_admin_token_is_unauthenticated(
    service: TokenServiceApp, identities: admin_pb2_grpc.IdentitiesStub, admin_token: str
) -> None:
    """A disabled admin token is refused at once."""
    ok = await identities.ListIdentities(pb.ListIdentitiesRequest(), metadata=_md(admin_token))
    assert [i.name for i in ok.identities] == ["root"]
    jti = jwt.decode(admin_token, options={"verify_signature": False})["jti"]
    await admin.set_token_active(service.core, jti, False)
    call = identities.ListIdentities(pb.ListIdentitiesRequest(), metadata=_md(admin_token))
    assert await _code(call) == grpc.StatusCode.UNAUTHENTICATED


# --- identities, passwords, policies ---------------------------------------------------------


async def test_identity_lifecycle(
    identities: admin_pb2_grpc.IdentitiesStub, oauth: oauth_pb2_grpc.OAuthStub, admin_token: str
) -> None:
    """Create with password and policy → token works; disable → refused; delete → NOT_FOUND."""
    md = _md(admin_token)
    created = await identities.CreateIdentity(
        pb.CreateIdentityRequest(namespace="shop", name="bob", password="bob-pass-1", policy=["orders:*", "x:y"]),
        metadata=md,
    )
    assert (created.enabled, created.has_password, created.password_enabled) == (True, True, True)
    assert list(created.policy) == ["orders:*", "x:y"]
    login = oauth_pb2.CreateTokenWithPasswordRequest(namespace="shop", identity="bob", password="bob-pass-1")
    assert (await oauth.CreateTokenWithPassword(login)).status == oauth_pb2.CreateTokenWithPasswordResponse.OK
    await identities.SetIdentityEnabled(
        pb.SetIdentityEnabledRequest(identity=pb.IdentityRef(namespace="shop", name="bob"), enabled=False), metadata=md
    )
    refused = await oauth.CreateTokenWithPassword(login)
    assert refused.status == oauth_pb2.CreateTokenWithPasswordResponse.IDENTITY_NOT_ACTIVE
    await identities.DeleteIdentity(pb.IdentityRef(namespace="shop", name="bob"), metadata=md)
    call = identities.GetIdentity(pb.IdentityRef(namespace="shop", name="bob"), metadata=md)
    assert await _code(call) == grpc.StatusCode.NOT_FOUND


async def test_duplicate_identity_is_already_exists(
    identities: admin_pb2_grpc.IdentitiesStub, admin_token: str
) -> None:
    """Creating an existing namespace/name is ALREADY_EXISTS."""
    call = identities.CreateIdentity(pb.CreateIdentityRequest(name="root"), metadata=_md(admin_token))
    assert await _code(call) == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize(
    "request_",
    [
        pb.CreateIdentityRequest(name=""),
        pb.CreateIdentityRequest(name="a\nb"),
        pb.CreateIdentityRequest(name="a", policy=["bad scope"]),
    ],
    ids=["empty-name", "control-char", "bad-policy"],
)
async def test_malformed_admin_request_is_invalid_argument(
    identities: admin_pb2_grpc.IdentitiesStub, admin_token: str, request_: pb.CreateIdentityRequest
) -> None:
    """Bad names and policy entries are INVALID_ARGUMENT."""
    assert (
        await _code(identities.CreateIdentity(request_, metadata=_md(admin_token))) == grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_password_disable_and_policy_set(
    identities: admin_pb2_grpc.IdentitiesStub, oauth: oauth_pb2_grpc.OAuthStub, admin_token: str
) -> None:
    """Disabling the password refuses logins; SetPolicy changes what a token may carry."""
    md = _md(admin_token)
    ref = pb.IdentityRef(name="carol")
    await identities.CreateIdentity(pb.CreateIdentityRequest(name="carol", password="carol-pass"), metadata=md)
    await identities.SetPolicy(pb.SetPolicyRequest(identity=ref, policy=["reports:read"]), metadata=md)
    login = oauth_pb2.CreateTokenWithPasswordRequest(identity="carol", password="carol-pass")
    ok = await oauth.CreateTokenWithPassword(login)
    assert list(ok.scopes) == ["reports:read"]
    await identities.SetPasswordEnabled(pb.SetPasswordEnabledRequest(identity=ref, enabled=False), metadata=md)
    refused = await oauth.CreateTokenWithPassword(login)
    assert refused.status == oauth_pb2.CreateTokenWithPasswordResponse.CREDENTIALS_INVALID
    await identities.SetPassword(pb.SetPasswordRequest(identity=ref, password="new-pass-22"), metadata=md)
    relogin = oauth_pb2.CreateTokenWithPasswordRequest(identity="carol", password="new-pass-22")
    assert (await oauth.CreateTokenWithPassword(relogin)).status == oauth_pb2.CreateTokenWithPasswordResponse.OK


async def test_list_identities_pages(
    service: TokenServiceApp, identities: admin_pb2_grpc.IdentitiesStub, admin_token: str
) -> None:
    """Paging walks every identity exactly once, in namespace/name order."""
    for i in range(5):
        await admin.create_identity(service.core, "ns", f"id{i}")
    names, token = [], ""
    while True:
        page = await identities.ListIdentities(
            pb.ListIdentitiesRequest(namespace="ns", page_size=2, page_token=token), metadata=_md(admin_token)
        )
        names += [i.name for i in page.identities]
        token = page.next_page_token
        if not token:
            break
    assert names == [f"id{i}" for i in range(5)]


# --- tokens ----------------------------------------------------------------------------------


async def test_tokens_list_disable_delete(
    service: TokenServiceApp,
    tokens: admin_pb2_grpc.TokensStub,
    oauth: oauth_pb2_grpc.OAuthStub,
    admin_token: str,
) -> None:
    """ListTokens shows jti/usage/scopes/metadata/times/state but never a token; disable and delete act."""
    md = _md(admin_token)
    await add_identity(service.core, "dave", "pw-123456", ("a:b",))
    issued = await oauth.CreateTokenWithPassword(
        oauth_pb2.CreateTokenWithPasswordRequest(identity="dave", password="pw-123456", metadata="laptop")
    )
    listing = await tokens.ListTokens(pb.ListTokensRequest(identity="dave"), metadata=md)
    assert sorted(t.usage for t in listing.tokens) == ["access_token", "refresh_token"]
    assert all(t.metadata == "laptop" and list(t.scopes) == ["a:b"] and t.state == "active" for t in listing.tokens)
    assert issued.access_token not in str(listing) and issued.refresh_token not in str(listing)
    access = next(t for t in listing.tokens if t.usage == "access_token")
    assert access.expires_unix - access.created_unix == 3600
    await tokens.SetTokenEnabled(pb.SetTokenEnabledRequest(jti=access.jti, enabled=False), metadata=md)
    check = await oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=issued.access_token))
    assert check.status == CheckStatus.TOKEN_DISABLED
    await tokens.DeleteToken(pb.DeleteTokenRequest(jti=access.jti), metadata=md)
    check = await oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=issued.access_token))
    assert check.status == CheckStatus.TOKEN_NOT_FOUND
    assert (
        await _code(tokens.DeleteToken(pb.DeleteTokenRequest(jti=access.jti), metadata=md)) == grpc.StatusCode.NOT_FOUND
    )


async def test_tokens_list_pages(service: TokenServiceApp, tokens: admin_pb2_grpc.TokensStub, admin_token: str) -> None:
    """Token paging returns every token once."""
    await add_identity(service.core, "erin", "pw-123456", ("a:b",))
    for _ in range(3):
        await create_token_with_password(service.core, namespace="", identity="erin", password="pw-123456")
    seen, token = [], ""
    while True:
        page = await tokens.ListTokens(
            pb.ListTokensRequest(identity="erin", page_size=4, page_token=token), metadata=_md(admin_token)
        )
        seen += [t.jti for t in page.tokens]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 6


# --- keys ------------------------------------------------------------------------------------


async def test_keys_rotate_and_list(keys_admin: admin_pb2_grpc.KeysStub, admin_token: str) -> None:
    """RotateKey with delay 0 makes the new key the signer; ListKeys shows both, no private parts."""
    md = _md(admin_token)
    before = await keys_admin.ListKeys(pb.ListKeysRequest(), metadata=md)
    rotated = await keys_admin.RotateKey(pb.RotateKeyRequest(publish_delay_s=0), metadata=md)
    after = await keys_admin.ListKeys(pb.ListKeysRequest(), metadata=md)
    assert len(after.keys) == len(before.keys) + 1
    assert [k.kid for k in after.keys if k.signing] == [rotated.key.kid]
    old = next(k for k in after.keys if k.kid == before.keys[0].kid)
    assert old.retire_unix and old.expire_unix > old.retire_unix


async def test_retire_key_invalidates_its_tokens(
    service: TokenServiceApp, keys_admin: admin_pb2_grpc.KeysStub, oauth: oauth_pb2_grpc.OAuthStub, admin_token: str
) -> None:
    """RetireKey on the signing key: its tokens become TOKEN_INVALID, a new key signs."""
    await add_identity(service.core, "frank", "pw-123456", ("a:b",))
    old = await create_token_with_password(service.core, namespace="", identity="frank", password="pw-123456")
    kid = jwt.get_unverified_header(old.access_token)["kid"]
    retired = await keys_admin.RetireKey(pb.RetireKeyRequest(kid=kid), metadata=_md(admin_token))
    assert retired.signing_key.kid != kid
    check = await oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=old.access_token))
    assert check.status == CheckStatus.TOKEN_INVALID
    fresh = await create_token_with_password(service.core, namespace="", identity="frank", password="pw-123456")
    assert (
        await oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=fresh.access_token))
    ).status == CheckStatus.OK
