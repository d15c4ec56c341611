"""Checking an authorization request (``GET /oauth2/authorize``) in the order RFC 6749 §4.1.2.1 asks.

:func:`trusted_redirect` decides whether errors may be sent back at all: the client must exist and
the ``redirect_uri`` must be exactly one of its registered URIs; otherwise
:class:`UntrustedRedirect` (an error page, never a redirect). :func:`validate` then checks the rest
and raises errors that *are* sent to the redirect URI (with ``state`` and ``iss``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Final

from native_iam import scopes as scope_rules
from native_iam.limits import MAX_STATE_BYTES
from token_service.clients import ClientStore, GrantType, OAuthClient
from token_service.errors import (
    InvalidRequest,
    ScopeNotGranted,
    UnauthorizedClient,
    UnsupportedResponseType,
    UntrustedRedirect,
)
from token_service.id_tokens import OPENID
from token_service.redirect_uris import is_registered
from token_service.requested_scopes import requested_scopes

__all__ = ["AuthorizationRequest", "trusted_redirect", "validate"]

#: RFC 7636 §4.2: BASE64URL(SHA256(verifier)) without padding is exactly 43 characters.
_S256_CHALLENGE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
#: ``prompt`` values understood (OpenID Connect Core §3.1.2.1); others are ignored.
PROMPTS: Final = frozenset({"none", "login", "consent"})


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A checked authorization request; what the login, consent and code steps need."""

    client_id: str
    redirect_uri: str
    #: Requested scopes, normalized; empty = the identity policy's concrete scopes.
    scopes: tuple[str, ...]
    code_challenge: str
    state: str | None = None
    nonce: str | None = None
    prompt: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AuthorizationRequest:
        data = json.loads(text)
        data["scopes"] = tuple(data["scopes"])
        return cls(**data)


async def trusted_redirect(params: Mapping[str, str], clients: ClientStore) -> tuple[OAuthClient, str]:
    """The client and the redirect URI errors may go to; :class:`UntrustedRedirect` when either is not good."""
    client_id = params.get("client_id")
    client = await clients.get_client(client_id) if client_id else None
    if client is None or not client.enabled:
        # A disabled client (issue 13) is refused like an unknown one: no redirect to it.
        raise UntrustedRedirect("unknown or disabled application (client_id)")
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        # OAuth 2.1 §4.1.1 allows omitting it with one registered URI; requiring it keeps the
        # token request's redirect_uri check simple and exact.
        raise UntrustedRedirect("the request names no redirect_uri")
    if not is_registered(redirect_uri, client.redirect_uris):
        raise UntrustedRedirect("the redirect_uri is not registered for this application")
    return client, redirect_uri


def validate(params: Mapping[str, str], client: OAuthClient, redirect_uri: str) -> AuthorizationRequest:
    """The request's other parameters; raises errors to send to ``redirect_uri``."""
    if params.get("response_type") != "code":
        raise UnsupportedResponseType()
    if not client.allows(GrantType.AUTHORIZATION_CODE):
        raise UnauthorizedClient("the application may not use the authorization code flow")
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if challenge is None:
        raise InvalidRequest("PKCE is required: code_challenge is missing")
    if method != "S256":
        # RFC 7636 §4.3 defaults to "plain" when absent; OAuth 2.1 and this service accept S256 only.
        raise InvalidRequest("code_challenge_method must be S256")
    if not _S256_CHALLENGE.fullmatch(challenge):
        raise InvalidRequest("code_challenge is not a base64url SHA-256 digest")
    for name in ("state", "nonce"):
        value = params.get(name)
        if value is not None and len(value.encode("utf-8")) > MAX_STATE_BYTES:
            raise InvalidRequest(f"{name} exceeds {MAX_STATE_BYTES} bytes")
    scopes = requested_scopes((params.get("scope") or "").split())  # MalformedScope: invalid_scope
    if client.scopes:
        # A client with a scope policy (issue 13) may ask only for what it covers, for a user too;
        # `openid` asks for an ID token, not for access. The identity's policy is checked at login.
        outside = scope_rules.not_covered([s for s in scopes if s != OPENID], client.scopes)
        if outside:
            raise ScopeNotGranted(f"scope not allowed for this application: {' '.join(outside)}"[:300])
    prompt = params.get("prompt")
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        code_challenge=challenge,
        state=params.get("state"),
        nonce=params.get("nonce"),
        prompt=prompt if prompt in PROMPTS else None,
    )
