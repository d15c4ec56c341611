"""First identities: the bootstrap admin (env/Secret or ``native-iam admin bootstrap``) and,
for ``native-iam token-service --demo``, a demo identity with a password and a policy."""

from __future__ import annotations

import secrets

from token_service.admin import ADMIN_SCOPE, IdentityInfo, ensure_identity
from token_service.core import Core

__all__ = ["DEMO_IDENTITY", "DEMO_POLICY", "bootstrap_admin", "bootstrap_demo"]

DEMO_IDENTITY = "demo"
DEMO_POLICY = ("orders:read", "orders:write", "profile:*")


async def bootstrap_admin(core: Core, name: str, password: str) -> IdentityInfo:
    """A global identity ``name`` with ``password`` and the ``iam:admin`` scope (no wildcard)."""
    return await ensure_identity(core, "", name, password, [ADMIN_SCOPE])


async def bootstrap_demo(core: Core, password: str | None = None) -> tuple[IdentityInfo, str]:
    """The demo identity (global, name ``demo``); returns it with its (new) password."""
    password = password or secrets.token_urlsafe(12)
    info = await ensure_identity(core, "", DEMO_IDENTITY, password, DEMO_POLICY)
    return info, password
