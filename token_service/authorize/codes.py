"""Authorization codes (RFC 6749 §4.1.2, §10.5) and PKCE (RFC 7636, S256 only).

A code is 256 random bits, lives NATIVE_IAM_AUTHORIZATION_CODE_TTL_S (≤ 60 s) in
``core.short_lived`` under the SHA-256 of its value, and carries everything the token request
must match: client, redirect URI, PKCE challenge, plus what the tokens need: scopes, the
identity (id *and* uid: a re-created namesake gets nothing), nonce and auth_time. Redeeming is
``take`` (atomic: one winner across every replica).

Every token issued from a code belongs to the family :func:`family_of` the code (a keyed hash
of it), so whoever presents the code again can name that family without any shared state and
revoke it (RFC 6749 §4.1.2: "SHOULD revoke … all tokens previously issued based on that
authorization code"). The replay also flags the code (:func:`mark_replayed`): a winner still
issuing when the replay came looks at the flag after its commit and revokes its own tokens. The
winner's *spent* marker only tells a replay (``code_reused``) from a guess (``code_unknown``)
in metrics and logs.
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

__all__ = [
    "CodeGrant",
    "family_of",
    "issue_code",
    "mark_replayed",
    "mark_spent",
    "pkce_matches",
    "redeem",
    "was_replayed",
    "well_formed",
]

CODE_KIND: Final = "code"
SPENT_KIND: Final = "code_spent"
#: How long after its redemption a code's replay is still recognised, beyond the code's own life.
SPENT_MARGIN_S: Final = 60
_SPENT: Final = "spent"
_REPLAYED: Final = "replayed"
_CODE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
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


def family_of(code: str) -> str:
    """The token family of everything issued from ``code`` (32 hex characters; not the code)."""
    return hashlib.sha256(b"native-iam authorization code family\0" + code.encode("utf-8")).hexdigest()[:32]


def well_formed(code: str) -> bool:
    """Whether ``code`` has the shape of the codes we issue (43 base64url characters)."""
    return _CODE.fullmatch(code) is not None


async def mark_spent(core: Core, code: str) -> None:
    """Remember that ``code`` was redeemed (a later presentation is then reported as a replay)."""
    await core.short_lived.put(SPENT_KIND, secret_key(code), _SPENT, _marker_ttl(core))


async def mark_replayed(core: Core, code: str) -> bool:
    """Flag ``code`` as presented again; whether it had been redeemed before (a replay, not a guess)."""
    before = await core.short_lived.get(SPENT_KIND, secret_key(code))
    await core.short_lived.put(SPENT_KIND, secret_key(code), _REPLAYED, _marker_ttl(core))
    return before is not None


async def was_replayed(core: Core, code: str) -> bool:
    return await core.short_lived.get(SPENT_KIND, secret_key(code)) == _REPLAYED


def _marker_ttl(core: Core) -> float:
    return core.settings.authorization_code_ttl_s + SPENT_MARGIN_S


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def pkce_matches(verifier: str | None, challenge: str) -> bool:
    """Whether ``verifier`` is well-formed and hashes to ``challenge`` (constant-time comparison)."""
    if verifier is None or not _VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256(verifier).encode("ascii"), challenge.encode("ascii"))
