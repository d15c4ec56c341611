"""What the OAuth 2.0 HTTP endpoints add beyond the grants, transport-agnostic: RFC 7009
revocation (:mod:`~token_service.oauth.revoke`), RFC 7662 introspection
(:mod:`~token_service.oauth.introspect`) and OpenID Connect userinfo (:mod:`~token_service.oauth.userinfo`)."""

from token_service.oauth.introspect import introspect
from token_service.oauth.revoke import revoke
from token_service.oauth.userinfo import userinfo

__all__ = ["introspect", "revoke", "userinfo"]
