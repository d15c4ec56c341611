"""Every field limit of the project, once: the token service and the sidecar import them from here.

Lengths of request fields are in bytes of UTF-8 unless the name says ``LENGTH`` (characters, for
values that are ASCII by rule). The database columns (``token_service/store/tables.py``) are
at least as wide as the limits of the values stored in them.
"""

from __future__ import annotations

from typing import Final

# --- tokens --------------------------------------------------------------------------------

#: Largest compact JWS accepted anywhere (access, refresh and ID tokens; the issuer's are ~1 KiB).
MAX_TOKEN_BYTES: Final = 8192
#: Longest ``jti`` accepted (the issuer writes 22 characters).
MAX_JTI_LENGTH: Final = 64
#: Longest ``kid`` (RFC 7638 thumbprints are 43 characters).
MAX_KID_LENGTH: Final = 128
#: Longest other text claim (``sub``, ``iss``, ``namespace``, ...) a verifier accepts.
MAX_CLAIM_LENGTH: Final = 1024

# --- identities ----------------------------------------------------------------------------

#: An identity's name and its namespace: a DNS subdomain (RFC 1123), like Kubernetes names.
MAX_NAME_BYTES: Final = 253
#: A password; argon2 hashes any length, the bound keeps each attempt's cost fixed.
MAX_PASSWORD_BYTES: Final = 1024
#: The free-form ``metadata`` stored with the tokens of a grant.
MAX_METADATA_BYTES: Final = 4096

# --- scopes --------------------------------------------------------------------------------

#: One RFC 6749 §3.3 scope-token.
MAX_SCOPE_LENGTH: Final = 200
#: Distinct scopes in one request, policy or token.
MAX_SCOPES: Final = 100
#: A space-delimited ``scope`` parameter holding MAX_SCOPES scopes of MAX_SCOPE_LENGTH.
MAX_SCOPE_PARAMETER_LENGTH: Final = MAX_SCOPES * (MAX_SCOPE_LENGTH + 1)

# --- OAuth clients -------------------------------------------------------------------------

#: A ``client_id``: visible ASCII, no spaces.
MAX_CLIENT_ID_LENGTH: Final = 255
#: A presented ``client_secret`` (the service generates 43 characters).
MAX_CLIENT_SECRET_BYTES: Final = 255
#: A client's display name.
MAX_CLIENT_NAME_BYTES: Final = 200
#: One audience of a client (RFC 8707 ``resource``).
MAX_AUDIENCE_BYTES: Final = 255
#: A protocol keyword such as ``grant_type`` or ``token_type_hint``.
MAX_KEYWORD_BYTES: Final = 64
#: A redirect URI or post-logout redirect URI (registered and presented; browsers cap URLs near 2 KiB).
MAX_REDIRECT_URI_LENGTH: Final = 2000
#: Registered redirect URIs (and, separately, post-logout redirect URIs) of one client.
MAX_REDIRECT_URIS: Final = 20
#: The ``state`` and ``nonce`` of an authorization request (opaque to us; returned/embedded unchanged).
MAX_STATE_BYTES: Final = 1024
#: A PKCE ``code_verifier`` (RFC 7636 §4.1: 43 to 128 unreserved characters).
MAX_CODE_VERIFIER_LENGTH: Final = 128
#: An authorization code as presented (the service issues 43 characters).
MAX_CODE_LENGTH: Final = 256
#: A login session cookie, pending-request id or CSRF token as presented (the service issues 43 characters).
MAX_BROWSER_SECRET_LENGTH: Final = 128

# --- OAuth HTTP forms ----------------------------------------------------------------------

#: Largest form body: a refresh token plus every other parameter fits easily.
MAX_FORM_BODY_BYTES: Final = 16 * 1024
#: Any form parameter without a limit of its own (ignored by the endpoints, RFC 6749 §3.1).
MAX_OTHER_PARAMETER_BYTES: Final = 1024

# --- admin API and feed --------------------------------------------------------------------

#: An opaque ``page_token`` of a list call.
MAX_PAGE_TOKEN_BYTES: Final = 2048
#: The ``subscriber`` name a sidecar gives the revocation feed (its pod name).
MAX_SUBSCRIBER_BYTES: Final = 253
#: Entries (scopes and patterns) in one identity's policy.
MAX_POLICY_ENTRIES: Final = 1000
#: Items in one page of a list call.
MAX_PAGE_SIZE: Final = 1000
#: Audiences of one OAuth client.
MAX_AUDIENCES: Final = 20
#: Longest ``kind`` of a short-lived value (token_service/shortlived.py; the column's size).
MAX_SHORT_LIVED_KIND_LENGTH: Final = 32
#: Longest key of a short-lived value (the column's size): callers hash longer keys.
MAX_SHORT_LIVED_KEY_LENGTH: Final = 255
