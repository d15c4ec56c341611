"""CheckAccess: is this access token valid now, and does it carry the required scopes?

The token service answers from its database (the record may be deleted or disabled, its
identity deleted, disabled or cut off by a policy change); sidecars answer the same question
locally from the JWKS and the revocation feed, with the same statuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from native_iam import claims as claim_names
from token_service.core import Core
from token_service.errors import InsufficientScope, TokenDisabled, TokenNotFound
from token_service.requested_scopes import requested_scopes
from token_service.store import tokens
from token_service.tokens import TokenClaims

__all__ = ["AccessGranted", "check_access", "verify_access_token"]


@dataclass(frozen=True, slots=True)
class AccessGranted:
    claims: TokenClaims
    message: str = "access granted"


async def verify_access_token(core: Core, access_token: str) -> TokenClaims:
    """Verify an access token against keys and the store; raise the seed's token statuses.

    Raises :class:`TokenInvalid`, :class:`~token_service.errors.TokenExpired`,
    :class:`TokenNotFound`, :class:`TokenDisabled`.
    """
    now = core.clock()
    cached = core.checks.get(access_token)
    # The key must still verify (a retired key also moves the generation; this is belt and braces).
    if cached is not None and now < cached.exp and core.keys.verification_key(cached.kid, now) is not None:
        return cached
    # Read before verifying: a revocation committed meanwhile moves it, voiding what we store below.
    generation = core.checks.generation
    claims = core.codec.verify(access_token, now, usage=claim_names.ACCESS_TOKEN)
    row = await core.store.run_read(tokens.for_check, claims.jti)
    if row is None:
        raise TokenNotFound()
    if row.identity_row is None:
        raise TokenNotFound("the token's identity was deleted")
    if row.state != "active":
        raise TokenDisabled()
    if not row.active:
        raise TokenDisabled("the token's identity is disabled")
    if row.policy_cutoff_at is not None and claims.iat <= row.policy_cutoff_at:
        raise TokenDisabled("the identity's policy changed after the token was issued")
    core.checks.put(access_token, claims, generation, now)
    return claims


async def check_access(core: Core, *, access_token: str, scopes: Iterable[str] = ()) -> AccessGranted:
    """Whether ``access_token`` is valid and grants every scope in ``scopes`` (all-of).

    Raises as :func:`verify_access_token`, plus :class:`InsufficientScope` (with ``.claims`` set)
    and :class:`MalformedScope`.
    """
    required = requested_scopes(scopes)
    claims = await verify_access_token(core, access_token)
    missing = [s for s in required if s not in claims.scopes]
    if missing:
        raise InsufficientScope(f"missing scope: {' '.join(missing)}"[:300], claims=claims)
    return AccessGranted(claims)
