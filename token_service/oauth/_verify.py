"""The one check the OAuth endpoints share before looking a token up."""

from __future__ import annotations

from token_service.core import Core
from token_service.errors import TokenServiceError
from token_service.tokens import TokenClaims

__all__ = ["verified_or_none"]


def verified_or_none(core: Core, token: str) -> TokenClaims | None:
    """The claims of ``token`` if it is one of ours (signature, expiry), else None: RFC 7009 and
    RFC 7662 answer an invalid token like an unknown one, never with an error."""
    try:
        return core.codec.verify(token, core.clock())
    except TokenServiceError:
        return None
