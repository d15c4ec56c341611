"""Grants: the domain functions that issue tokens, shared by the gRPC and HTTP transports."""

from token_service.grants._issue import ClientContext, IssuedTokens, client_context
from token_service.grants.authorization_code import exchange_authorization_code
from token_service.grants.client_credentials import client_credentials_grant
from token_service.grants.password import create_token_with_password
from token_service.grants.refresh_token import refresh_access_token
from token_service.grants.token_exchange import ACCESS_TOKEN_TYPE, exchange_token

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "ClientContext",
    "IssuedTokens",
    "client_context",
    "client_credentials_grant",
    "create_token_with_password",
    "exchange_authorization_code",
    "exchange_token",
    "refresh_access_token",
]
