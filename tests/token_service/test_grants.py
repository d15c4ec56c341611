"""The grant and check domain functions on both backends (the PostgreSQL path re-reads the
identity under a share lock, so its refusals are tested there too)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.token_service.conftest import add_identity
from token_service import errors
from token_service.access import check_access
from token_service.admin import service as admin
from token_service.core import Core
from token_service.grants import IssuedTokens, create_token_with_password, refresh_access_token

PASSWORD = "pw-123456"

Change = Callable[[Core, IssuedTokens], Awaitable[None]]


async def _delete_identity(core: Core, _: IssuedTokens) -> None:
    await admin.delete_identity(core, "", "alice")


async def _disable_identity(core: Core, _: IssuedTokens) -> None:
    await admin.set_identity_active(core, "", "alice", False)


async def _narrow_policy(core: Core, _: IssuedTokens) -> None:
    await admin.set_policy(core, "", "alice", ["a:b"])


async def _disable_refresh(core: Core, issued: IssuedTokens) -> None:
    await admin.set_token_active(core, issued.refresh_jti or "", False)


async def _delete_refresh(core: Core, issued: IssuedTokens) -> None:
    await admin.delete_token(core, issued.refresh_jti or "")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (_delete_identity, errors.IdentityNotFound),
        (_disable_identity, errors.IdentityNotActive),
        (_narrow_policy, errors.IdentityUnauthenticated),
        (_disable_refresh, errors.TokenDisabled),
        (_delete_refresh, errors.TokenNotFound),
    ],
    ids=["identity-deleted", "identity-disabled", "policy-narrowed", "token-disabled", "token-deleted"],
)
async def test_refresh_refusals(core: Core, change: Change, error: type[errors.GrantError]) -> None:
    """Each change after issuance makes the refresh grant raise the matching seed status."""
    await add_identity(core, "alice", PASSWORD, ("a:b", "c:d"))
    issued = await create_token_with_password(core, namespace="", identity="alice", password=PASSWORD)
    await change(core, issued)
    with pytest.raises(error):
        await refresh_access_token(core, refresh_token=issued.refresh_token or "")


async def test_password_grant_refusals(core: Core) -> None:
    """Wrong password, outside-policy scope and disabled identity, in that order of checks."""
    await add_identity(core, "alice", PASSWORD, ("a:b",))
    with pytest.raises(errors.CredentialsInvalid):
        await create_token_with_password(core, namespace="", identity="alice", password="nope")
    with pytest.raises(errors.ScopeNotGranted):
        await create_token_with_password(core, namespace="", identity="alice", password=PASSWORD, scopes=["x:y"])
    await admin.set_identity_active(core, "", "alice", False)
    with pytest.raises(errors.IdentityNotActive):
        await create_token_with_password(core, namespace="", identity="alice", password=PASSWORD)


async def test_refresh_may_narrow_but_not_widen(core: Core) -> None:
    """A refresh may ask for a subset of the token's scopes (HTTP `scope`), never more."""
    await add_identity(core, "alice", PASSWORD, ("a:b", "c:d"))
    issued = await create_token_with_password(core, namespace="", identity="alice", password=PASSWORD)
    narrowed = await refresh_access_token(core, refresh_token=issued.refresh_token or "", scopes=["a:b"])
    assert narrowed.scopes == ("a:b",)
    with pytest.raises(errors.ScopeNotGranted):
        await refresh_access_token(core, refresh_token=issued.refresh_token or "", scopes=["e:f"])


async def test_check_access_on_disabled_identity(core: Core) -> None:
    """CheckAccess answers TOKEN_DISABLED for an identity disabled after issuance, OK once enabled."""
    await add_identity(core, "alice", PASSWORD, ("a:b",))
    issued = await create_token_with_password(core, namespace="", identity="alice", password=PASSWORD)
    await admin.set_identity_active(core, "", "alice", False)
    with pytest.raises(errors.TokenDisabled):
        await check_access(core, access_token=issued.access_token)
    await admin.set_identity_active(core, "", "alice", True)
    assert (await check_access(core, access_token=issued.access_token, scopes=["a:b"])).claims.sub == "alice"
