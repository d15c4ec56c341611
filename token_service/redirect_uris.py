"""Which redirect URIs a client may register, and how a presented one is matched.

Registration is strict so that matching can be trivial: a presented ``redirect_uri`` (or
``post_logout_redirect_uri``) is accepted only if it is *character for character* one of the
client's registered URIs (OAuth 2.1 §4.1.1, RFC 9700 §4.1.3: no prefix, pattern or
normalisation, which is where open redirectors come from). A registered URI must be:

* absolute, without a fragment (RFC 6749 §3.1.2) and without user information;
* ``https``; or ``http`` on a loopback host only (RFC 8252 §7.3, native apps and development);
  or a private-use scheme in reverse-domain form such as ``com.example.app`` (RFC 8252 §7.1);
* printable ASCII (no spaces, no control characters) of at most MAX_REDIRECT_URI_LENGTH.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import urlsplit

from native_iam.limits import MAX_REDIRECT_URI_LENGTH, MAX_REDIRECT_URIS

__all__ = ["RedirectUriError", "is_registered", "validate_redirect_uri", "validate_redirect_uris"]

LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "[::1]", "localhost"})


class RedirectUriError(ValueError):
    """A redirect URI cannot be registered (the message says why; it never echoes a secret)."""


def validate_redirect_uri(uri: str) -> str:
    """``uri`` if it may be registered; RedirectUriError otherwise."""
    if not 0 < len(uri) <= MAX_REDIRECT_URI_LENGTH or not all(0x21 <= ord(ch) <= 0x7E for ch in uri):
        raise RedirectUriError(
            f"a redirect URI must be 1 to {MAX_REDIRECT_URI_LENGTH} printable ASCII characters without spaces"
        )
    try:
        parts = urlsplit(uri)
        port = parts.port  # raises on a malformed port
    except ValueError:
        raise RedirectUriError(f"not a valid URI: {uri[:100]}") from None
    del port
    scheme = parts.scheme.lower()
    if not scheme:
        raise RedirectUriError(f"a redirect URI must be absolute: {uri[:100]}")
    if "#" in uri:
        raise RedirectUriError(f"a redirect URI must not have a fragment: {uri[:100]}")
    if "@" in parts.netloc:
        raise RedirectUriError(f"a redirect URI must not carry user information: {uri[:100]}")
    if scheme in {"https", "http"}:
        host = parts.netloc.rpartition(":")[0] if parts.port is not None else parts.netloc
        if not parts.hostname:
            raise RedirectUriError(f"a redirect URI needs a host: {uri[:100]}")
        if scheme == "http" and host.lower() not in LOOPBACK_HOSTS:
            raise RedirectUriError(f"http redirect URIs are allowed for loopback hosts only: {uri[:100]}")
        return uri
    if "." not in scheme:
        # javascript:, data:, file: ... and bare custom schemes that any app could claim.
        raise RedirectUriError(f"a private-use scheme must be reverse-domain (com.example.app): {uri[:100]}")
    return uri


def validate_redirect_uris(uris: Iterable[str]) -> tuple[str, ...]:
    """Every URI validated, duplicates dropped (order kept); at most MAX_REDIRECT_URIS."""
    unique = tuple(dict.fromkeys(validate_redirect_uri(u) for u in uris))
    if len(unique) > MAX_REDIRECT_URIS:
        raise RedirectUriError(f"at most {MAX_REDIRECT_URIS} redirect URIs per list")
    return unique


def is_registered(presented: str, registered: Sequence[str]) -> bool:
    """Whether ``presented`` is exactly one of ``registered`` (every entry compared, constant time each)."""
    data = presented.encode("utf-8", "surrogatepass")
    found = False
    for uri in registered:
        found |= hmac.compare_digest(data, uri.encode("utf-8"))
    return found
