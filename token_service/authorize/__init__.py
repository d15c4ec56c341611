"""The authorization code flow's domain (RFC 6749 §4.1, RFC 7636, OAuth 2.1), below the HTTP pages.

* :mod:`.request` — an authorization request checked in the RFC's order: the client and its
  redirect URI first (an error page when they are not good), then everything else (an error
  sent back to that redirect URI);
* :mod:`.sessions` — the browser's login session and the pending authorization requests, with
  their CSRF tokens, kept in ``core.short_lived``;
* :mod:`.codes` — authorization codes (single use, ≤ 60 s, bound to client, redirect URI, PKCE
  challenge, scopes, identity and nonce) and the PKCE check.

The token endpoint's side is :mod:`token_service.grants.authorization_code`; the pages are
:mod:`token_service.api.http.authorize`.
"""
