"""The one parser of ``Authorization: Bearer <token>`` (RFC 6750 §2.1), shared by the sidecar's
Check, the token service's /oauth2/userinfo and its admin gRPC metadata, so a header means the
same thing wherever it is sent.
"""

from __future__ import annotations

import re

__all__ = ["MalformedHeader", "token_from"]

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+) *")


class MalformedHeader(ValueError):
    """The header is not ``Bearer <b64token>`` although it names that scheme (or is far too long):
    a malformed request (RFC 6750 §3.1 ``invalid_request``). The message never holds the token."""


def token_from(value: str | None, *, max_bytes: int, require_scheme: bool = True) -> str | None:
    """The bearer token in a header value; None when it carries none (absent, blank, another
    scheme such as Basic). ``require_scheme=False`` also takes a bare token (a custom header).

    Raises :class:`MalformedHeader`.
    """
    if value is None or value.strip() == "":
        return None
    if len(value) > max_bytes + 16:
        raise MalformedHeader("the token is too long")
    match = _BEARER.fullmatch(value)
    if match is not None:
        token = match.group(1)
    elif require_scheme:
        if value.split(" ", 1)[0].lower() != "bearer":
            return None  # another scheme (Basic, …): this request carries no bearer token
        raise MalformedHeader("expected 'Bearer <token>'")
    else:
        token = value.strip()
    if not _B64TOKEN.fullmatch(token):
        raise MalformedHeader("the token contains characters a bearer token cannot have")
    return token
