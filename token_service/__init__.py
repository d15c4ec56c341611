"""The central token service: identities, passwords, policies, keys and tokens behind the
native_iam OAuth gRPC API and the OAuth 2.0 HTTP endpoints.

Transports call the domain functions re-exported here with a :class:`Core`.
"""

from token_service.access import AccessGranted, check_access, verify_access_token
from token_service.core import Core
from token_service.grants import ClientContext, IssuedTokens, create_token_with_password, refresh_access_token
from token_service.settings import Settings, SettingsError

__all__ = [
    "AccessGranted",
    "ClientContext",
    "Core",
    "IssuedTokens",
    "Settings",
    "SettingsError",
    "check_access",
    "create_token_with_password",
    "refresh_access_token",
    "verify_access_token",
]
