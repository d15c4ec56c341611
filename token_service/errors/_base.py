"""The root of the tree and the realm its challenges announce (see the package docstring)."""

from __future__ import annotations

from typing import ClassVar, Final

import grpc

__all__ = ["REALM", "TokenServiceError"]

#: Realm announced in ``WWW-Authenticate`` challenges.
REALM: Final = "native-iam"


class TokenServiceError(Exception):
    """Base of every error the token service raises on purpose."""

    status: ClassVar[str | None] = None
    error: ClassVar[str] = "server_error"
    http_status: ClassVar[int] = 500
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    #: The HTTP ``WWW-Authenticate`` value, with ``{realm}`` and ``{scope}`` to fill in, or None.
    challenge: ClassVar[str | None] = None
    #: Default message, safe for end users; a raise site may give a more precise one.
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
