"""Scope rules shared by the token service and the sidecar."""

from __future__ import annotations

import pytest

from native_iam import scopes


def test_parse_sorts_and_deduplicates() -> None:
    """A space-delimited scope string becomes a sorted tuple without duplicates."""
    assert scopes.parse("b:w  a:r b:w") == ("a:r", "b:w")


@pytest.mark.parametrize("bad", ['a"b', "a\\b", "é", "\x00", "x" * 201])
def test_invalid_scope_is_rejected(bad: str) -> None:
    """Characters outside RFC 6749 §3.3 scope-token and oversized scopes raise ScopeError."""
    with pytest.raises(scopes.ScopeError):
        scopes.normalize([bad])


def test_too_many_scopes() -> None:
    """More than MAX_SCOPES distinct scopes is an error, not a truncation."""
    with pytest.raises(scopes.ScopeError, match="too many"):
        scopes.normalize(f"s{i}" for i in range(scopes.MAX_SCOPES + 1))


@pytest.mark.parametrize(
    ("scope", "grant", "expected"),
    [
        ("orders:read", "orders:read", True),
        ("orders:read", "orders:*", True),
        ("ordersx:read", "orders:*", False),
        ("orders", "orders:*", False),
        ("anything", "*", True),
        ("orders:read", "orders:write", False),
    ],
)
def test_granted_by(scope: str, grant: str, expected: bool) -> None:
    """Exact grants match exactly; ``prefix:*`` matches only below ``prefix:``; ``*`` matches all."""
    assert scopes.granted_by(scope, grant) is expected


def test_not_covered_names_missing_scopes() -> None:
    """not_covered lists exactly the scopes the policy lacks."""
    assert scopes.not_covered(["a:r", "b:w", "c:x"], ["a:*", "c:x"]) == ("b:w",)
    assert scopes.covered(["a:r"], ["a:*"])


def test_concrete_drops_wildcards() -> None:
    """A token asked for with no scopes gets only the policy's exact scopes."""
    assert scopes.concrete(["a:*", "b:r", "*"]) == ("b:r",)


def test_from_claims_reads_scope_and_scp_and_ignores_bad_types() -> None:
    """Both claim forms count; values of the wrong type add nothing."""
    assert scopes.from_claims({"scope": "a b", "scp": ["c", 5]}) == {"a", "b", "c"}
    assert scopes.from_claims({"scope": ["a"], "scp": {"x": 1}}) == frozenset()
