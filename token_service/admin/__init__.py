"""Administration, transport-agnostic: identities, passwords, policies, issued tokens and keys
(:mod:`token_service.admin.service`), called by the admin gRPC API and ``native-iam admin bootstrap``."""

from token_service.admin.service import ADMIN_SCOPE, IdentityInfo, ensure_identity

__all__ = ["ADMIN_SCOPE", "IdentityInfo", "ensure_identity"]
