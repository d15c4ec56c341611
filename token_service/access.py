"""CheckAccess: is this access token valid now, and does it carry the required scopes?

The token service answers from its database (the record may be deleted or disabled, its
identity deleted, disabled or cut off by a policy change, its OAuth client deleted or
disabled); sidecars answer the same question locally from the JWKS and the revocation feed,
with the same statuses.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from native_iam import claims as claim_names
from token_service.core import Core
from token_service.errors import InsufficientScope, TokenDisabled, TokenNotFound
from token_service.requested_scopes import requested_scopes
from token_service.store import tokens
from token_service.tokens import TokenClaims

__all__ = ["AccessGranted", "ClientState", "check_access", "client_state", "verify_access_token"]


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
    if row is None or claims.is_client != (row.identity_id is None):
        raise TokenNotFound()  # a client token must have no identity, an identity's token one
    # Deletions answer first (identity, then client), as at the sidecar.
    if not claims.is_client and row.identity_row is None:
        raise TokenNotFound("the token's identity was deleted")
    client = client_state(core, claims, row)
    if client is ClientState.DELETED:
        raise TokenNotFound("the token's client was deleted")
    if row.state != "active":
        raise TokenDisabled()
    if not claims.is_client and not row.active:
        raise TokenDisabled("the token's identity is disabled")
    if client is ClientState.DISABLED:
        raise TokenDisabled("the token's client is disabled")
    if not claims.is_client and row.policy_cutoff_at is not None and claims.iat <= row.policy_cutoff_at:
        raise TokenDisabled("the identity's policy changed after the token was issued")
    core.checks.put(access_token, claims, generation, now)
    return claims


class ClientState(enum.Enum):
    """What the token's OAuth client (its ``client_id`` claim) says about the token."""

    LIVE = "live"
    DISABLED = "disabled"
    DELETED = "deleted"


def client_state(core: Core, claims: TokenClaims, row: Any) -> ClientState:
    """The client's verdict from ``row``'s ``client_id``/``client_row``/``client_enabled``/
    ``client_created_at`` (store.tokens.for_check): the stored token's client, the one it was
    issued to, read from the row like everything else here. The gRPC API's own client id has no
    row and never revokes. A token issued (``iat``) before the client's registration belongs to an
    earlier client of that id, deleted since: registration waits for the second after a deletion
    (:func:`token_service.admin.clients.create_client`), so the comparison cannot misread."""
    if row.client_id == core.settings.grpc_client_id:
        return ClientState.LIVE
    if row.client_row is None or claims.iat < int(row.client_created_at):
        return ClientState.DELETED
    return ClientState.LIVE if row.client_enabled else ClientState.DISABLED


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
