"""Scope rules shared by the token service and the sidecar.

A scope is a non-empty printable ASCII string without spaces, quotes or backslashes
(RFC 6749 §3.3 ``scope-token``). Policies may grant ``prefix:*``, which covers every scope that
starts with ``prefix:``; a lone ``*`` covers everything. Tokens only ever carry concrete scopes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from native_iam.limits import MAX_SCOPE_LENGTH, MAX_SCOPES

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_ALLOWED = frozenset(chr(c) for c in range(0x21, 0x7F) if c not in (0x22, 0x5C))


class ScopeError(ValueError):
    """A scope string is not a valid RFC 6749 scope-token."""


def is_valid_scope(scope: str) -> bool:
    return 0 < len(scope) <= MAX_SCOPE_LENGTH and all(ch in _ALLOWED for ch in scope)


def normalize(scopes: Iterable[str]) -> tuple[str, ...]:
    """Deduplicate and sort requested ``scopes``: the one scope rule of every request, both roles,
    both transports. Raise :class:`ScopeError` on an invalid one, or on more than MAX_SCOPES
    values (repeats count: the bound is on the work a request may cause)."""
    values = list(scopes)
    if len(values) > MAX_SCOPES:
        raise ScopeError(f"too many scopes: {len(values)} (at most {MAX_SCOPES})")
    unique = set(values)
    for scope in unique:
        if not is_valid_scope(scope):
            raise ScopeError(
                f"invalid scope {scope[:40]!r}: use printable ASCII without spaces, quotes or backslashes,"
                f" at most {MAX_SCOPE_LENGTH} characters"
            )
    return tuple(sorted(unique))


def parse(value: str) -> tuple[str, ...]:
    """Parse a space-delimited scope string (the ``scope`` claim or form parameter)."""
    return normalize(value.split())


def format_scopes(scopes: Iterable[str]) -> str:
    """The space-delimited form of ``scopes``, sorted, as put into tokens and responses."""
    return " ".join(sorted(set(scopes)))


def granted_by(scope: str, grant: str) -> bool:
    """Whether the policy entry ``grant`` (exact scope, ``prefix:*`` or ``*``) covers ``scope``."""
    if grant == "*":
        return True
    if grant.endswith(":*"):
        return scope.startswith(grant[:-1])
    return scope == grant


def covered(scopes: Iterable[str], policy: Iterable[str]) -> bool:
    """Whether every scope in ``scopes`` is granted by some entry of ``policy``."""
    grants = tuple(policy)
    return all(any(granted_by(scope, grant) for grant in grants) for scope in scopes)


def not_covered(scopes: Iterable[str], policy: Iterable[str]) -> tuple[str, ...]:
    """The scopes in ``scopes`` that ``policy`` does not grant, sorted."""
    grants = tuple(policy)
    return tuple(sorted(s for s in set(scopes) if not any(granted_by(s, g) for g in grants)))


def concrete(policy: Iterable[str]) -> tuple[str, ...]:
    """The exact scopes of a policy: what a token gets when the caller asks for none.

    Wildcard entries cannot be put into a token (a token carries concrete scopes only), so a
    caller who needs ``orders:read`` under an ``orders:*`` grant must ask for it.
    """
    return tuple(sorted({g for g in policy if g != "*" and not g.endswith(":*")}))


def from_claims(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes a token carries: ``scope`` (space-delimited) and ``scp`` (array) together.

    Values of the wrong type are ignored rather than trusted, so a malformed claim can only
    remove scopes, never add them.
    """
    result: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        result.update(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        result.update(s for s in scp if isinstance(s, str))
    elif isinstance(scp, str):
        result.update(scp.split())
    return frozenset(result)
