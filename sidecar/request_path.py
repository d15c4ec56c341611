"""Is a request path in the normal form Envoy routes on? (defence in depth behind Envoy's settings)

Envoy chose the route, and so the requirement the sidecar applies, from the request path. The
shipped configs make Envoy normalise that path first (``normalize_path``, ``merge_slashes``,
``path_with_escaped_slashes_action: REJECT_REQUEST``), so the path the route was chosen from is the
path the workload will route on. If a config lacks those settings, or Envoy leaves something a
framework would still rewrite, the route may not be the one the workload's handler belongs to:
such a request is refused (400, reason ``path_not_normalized``) instead of judged by the wrong
route. Only the path is examined; the query string is the workload's business.
"""

from __future__ import annotations

import re
import string

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_TWICE = re.compile(r"%25[0-9A-Fa-f]{2}")
# A normalised path never contains any of these; most paths do not, so they skip the full check.
_SUSPECT = re.compile(r"[%;\\\x00-\x20\x7f]|//|/\.")


def problem(path: str) -> str | None:
    """Why ``path`` (the ``CheckRequest``'s path, query included) is not normalised; None when it is.

    An empty path (a Check that did not come from Envoy's HTTP filter) has nothing to judge.
    """
    path = path.partition("?")[0]
    if not path:
        return None
    if not path.startswith("/"):
        return "the request path must start with /"
    if _SUSPECT.search(path) is None:
        return None
    return _examine(path)


def _examine(path: str) -> str | None:
    if "\\" in path:
        return "the request path contains a backslash"
    if any(c <= " " or c == "\x7f" for c in path):
        return "the request path contains a space or a control character"
    for escape in _ESCAPE.finditer(path):
        char = chr(int(escape.group(1), 16))
        if char in _UNRESERVED:
            return "the request path percent-encodes a character that needs no encoding"
        if char in "/\\\x00":
            return "the request path contains an encoded slash, backslash or NUL"
    if _TWICE.search(path):
        # %252e is %2e to a workload (or a proxy in front of it) that decodes twice.
        return "the request path is percent-encoded twice"
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        # Servlet containers drop ";parameters" before routing: "..;x" is "..", "/;x/admin" is "//admin".
        base = segment.partition(";")[0]
        if base in {".", ".."}:
            return "the request path contains a . or .. segment"
        if not base and i < len(segments) - 1:
            return "the request path contains an empty segment (// or /;)"
    return None


__all__ = ["problem"]
