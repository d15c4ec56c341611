"""Authorization codes (RFC 6749 §4.1.2, §10.5) and PKCE (RFC 7636, S256 only).

A code is 256 random bits, lives NATIVE_IAM_AUTHORIZATION_CODE_TTL_S (≤ 60 s) in
``core.short_lived`` under the SHA-256 of its value, and carries everything the token request
must match: client, redirect URI, PKCE challenge, plus what the tokens need: scopes, the
identity (id *and* uid: a re-created namesake gets nothing), nonce and auth_time. Redeeming is
``take`` (atomic: one winner across every replica). The winner leaves a *spent* marker naming the
token family it issues, kept for the code's lifetime plus a margin: a second presentation finds
the marker and revokes that family (RFC 6749 §4.1.2: "SHOULD revoke … all tokens previously
issued based on that authorization code").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Final

from token_service.authorize.request import AuthorizationRequest
from token_service.authorize.sessions import BrowserSession, secret_key
from token_service.core import Core
from token_service.tokens import new_jti

__all__ = ["CodeGrant", "issue_code", "mark_replayed", "mark_spent", "pkce_matches", "redeem", "spent_family"]

CODE_KIND: Final = "code"
SPENT_KIND: Final = "code_spent"
#: How long after its redemption a code's replay is still recognised, beyond the code's own life.
SPENT_MARGIN_S: Final = 60
_REPLAYED: Final = "replayed:"
#: RFC 7636 §4.1: code_verifier = 43*128unreserved.
_VERIFIER: Final = re.compile(r"[A-Za-z0-9._~-]{43,128}")


@dataclass(frozen=True, slots=True)
class CodeGrant:
    """What an authorization code stands for."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    scopes: tuple[str, ...]
    identity_id: int
    identity_uid: str
    namespace: str
    identity: str
    auth_time: int
    #: The ``family_id`` of every token issued from the code (what a replay revokes).
    family_id: str
    nonce: str | None = None


async def issue_code(
    core: Core, request: AuthorizationRequest, session: BrowserSession, scopes: tuple[str, ...]
) -> str:
    """A new code for ``request`` approved by ``session``'s identity with ``scopes``."""
    assert session.identity_id is not None, "only a signed-in session gets a code"
    code = secrets.token_urlsafe(32)
    grant = CodeGrant(
        client_id=request.client_id,
        redirect_uri=request.redirect_uri,
        code_challenge=request.code_challenge,
        scopes=scopes,
        identity_id=session.identity_id,
        identity_uid=session.identity_uid,
        namespace=session.namespace,
        identity=session.identity,
        auth_time=session.auth_time,
        family_id=new_jti(),
        nonce=request.nonce,
    )
    ttl = core.settings.authorization_code_ttl_s
    await core.short_lived.put(CODE_KIND, secret_key(code), json.dumps(asdict(grant)), ttl)
    return code


async def redeem(core: Core, code: str) -> CodeGrant | None:
    """The code's grant, claimed once (None when unknown, expired or already redeemed)."""
    value = await core.short_lived.take(CODE_KIND, secret_key(code))
    if value is None:
        return None
    data = json.loads(value)
    data["scopes"] = tuple(data["scopes"])
    return CodeGrant(**data)


async def mark_spent(core: Core, code: str, family_id: str) -> None:
    """Remember that ``code`` was redeemed into ``family_id`` (for replay detection)."""
    ttl = core.settings.authorization_code_ttl_s + SPENT_MARGIN_S
    await core.short_lived.put(SPENT_KIND, secret_key(code), family_id, ttl)


async def spent_family(core: Core, code: str) -> tuple[str | None, bool]:
    """``(family_id, replayed)`` of a redeemed code; ``(None, False)`` when it was never redeemed."""
    value = await core.short_lived.get(SPENT_KIND, secret_key(code))
    if value is None:
        return None, False
    return value.removeprefix(_REPLAYED), value.startswith(_REPLAYED)


async def mark_replayed(core: Core, code: str, family_id: str) -> None:
    """Flag a redeemed code as replayed: a redemption still issuing its tokens revokes them when done."""
    ttl = core.settings.authorization_code_ttl_s + SPENT_MARGIN_S
    await core.short_lived.put(SPENT_KIND, secret_key(code), _REPLAYED + family_id, ttl)


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def pkce_matches(verifier: str | None, challenge: str) -> bool:
    """Whether ``verifier`` is well-formed and hashes to ``challenge`` (constant-time comparison)."""
    if verifier is None or not _VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256(verifier).encode("ascii"), challenge.encode("ascii"))
