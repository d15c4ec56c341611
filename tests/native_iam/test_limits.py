"""Field limits are written once, in native_iam/limits.py: no length literal anywhere else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from native_iam import limits
from token_service.store import clients as _clients  # noqa: F401 - defines oauth_clients in the metadata
from token_service.store.tables import metadata

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("native_iam", "sidecar", "token_service")
#: Frozen history (migrations), generated code, and the file the limits live in.
SKIPPED = ("migrations", "_pb2", "limits.py")
#: Functions whose integer arguments are field limits.
LIMITED_CALLS = {"text_field", "token_from", "_text"}
SMALLEST_LIMIT = 32


def _sources() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not any(part in str(path.relative_to(ROOT)) for part in SKIPPED)
    ]


def _is_limit(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and node.value >= SMALLEST_LIMIT


def _is_len(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len"


def _call_name(node: ast.Call) -> str:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")


def _is_limit_name(name: str) -> bool:
    """``MAX_..._BYTES``, ``max_..._length``, ``MAX_LENGTHS``: a name that says it holds a length limit."""
    upper = name.upper().lstrip("_")
    return upper.startswith("MAX") and ("BYTES" in upper or "LENGTH" in upper)


def _target_names(node: ast.Assign | ast.AnnAssign) -> list[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [t.id if isinstance(t, ast.Name) else getattr(t, "attr", "") for t in targets]


def _upper_bound(node: ast.Compare) -> bool:
    """``len(x) > N``, ``len(x) >= N`` or ``... <= N``: N bounds a length from above."""
    sides = [node.left, *node.comparators]
    return any(_is_len(s) for s in sides) and any(
        isinstance(op, (ast.Gt, ast.GtE, ast.LtE)) and (_is_limit(right) or (_is_limit(left) and _is_len(right)))
        for op, left, right in zip(node.ops, sides[:-1], sides[1:], strict=True)
        if _is_len(left) or _is_len(right)
    )


def _length_literals(tree: ast.AST) -> list[int]:
    """Lines where an integer literal is used as a field limit."""
    found: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and _upper_bound(node):
            found.append(node.lineno)
        elif isinstance(node, ast.Call):
            arguments = [*node.args, *(k.value for k in node.keywords)]
            if _call_name(node) in LIMITED_CALLS and any(_is_limit(a) for a in arguments):
                found.append(node.lineno)
            found += [k.value.lineno for k in node.keywords if k.arg and _is_limit_name(k.arg) and _is_limit(k.value)]
        elif isinstance(node, ast.arguments):
            named = [*node.posonlyargs, *node.args][-len(node.defaults) :] if node.defaults else []
            pairs = [*zip(named, node.defaults, strict=True), *zip(node.kwonlyargs, node.kw_defaults, strict=True)]
            found += [d.lineno for a, d in pairs if _is_limit_name(a.arg) and _is_limit(d)]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and any(_is_limit_name(n) for n in _target_names(node)):
            values = node.value.values if isinstance(node.value, ast.Dict) else [node.value]
            found += [v.lineno for v in values if _is_limit(v)]
        elif (
            isinstance(node, ast.Slice)
            and isinstance(node.upper, ast.Constant)
            and node.upper.value in {limits.MAX_NAME_BYTES, limits.MAX_CLIENT_ID_LENGTH}
        ):
            found.append(node.lineno)
    return sorted(set(found))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_length_literal_outside_limits(path: Path) -> None:
    """A length limit typed as a literal drifts from its twin on the other transport; use native_iam.limits."""
    lines = _length_literals(ast.parse(path.read_text(encoding="utf-8")))
    assert not lines, f"{path.relative_to(ROOT)}: length literals on lines {lines}"


def test_the_scope_parameter_holds_every_scope() -> None:
    """A ``scope`` parameter of MAX_SCOPES longest scopes, space-separated, is within its limit."""
    longest = " ".join(["s" * limits.MAX_SCOPE_LENGTH] * limits.MAX_SCOPES)
    assert len(longest) <= limits.MAX_SCOPE_PARAMETER_LENGTH


def test_a_refresh_token_fits_a_form_body() -> None:
    """The largest token plus a client secret and the other parameters fits the form body limit."""
    assert limits.MAX_TOKEN_BYTES + limits.MAX_CLIENT_SECRET_BYTES + 1024 < limits.MAX_FORM_BODY_BYTES


#: (table, column) → the limit of the values stored there; each column must hold the longest value.
STORED = {
    ("identities", "namespace"): limits.MAX_NAME_BYTES,
    ("identities", "name"): limits.MAX_NAME_BYTES,
    ("tokens", "jti"): limits.MAX_JTI_LENGTH,
    ("tokens", "namespace"): limits.MAX_NAME_BYTES,
    ("tokens", "identity"): limits.MAX_NAME_BYTES,
    ("tokens", "client_id"): limits.MAX_CLIENT_ID_LENGTH,
    ("tokens", "kid"): limits.MAX_KID_LENGTH,
    ("signing_keys", "kid"): limits.MAX_KID_LENGTH,
    ("revocations", "jti"): limits.MAX_JTI_LENGTH,
    ("revocations", "namespace"): limits.MAX_NAME_BYTES,
    ("revocations", "identity"): limits.MAX_NAME_BYTES,
    ("revocations", "kid"): limits.MAX_KID_LENGTH,
    ("oauth_clients", "client_id"): limits.MAX_CLIENT_ID_LENGTH,
    ("oauth_clients", "name"): limits.MAX_CLIENT_NAME_BYTES,
}


@pytest.mark.parametrize(("table", "column"), sorted(STORED), ids=lambda v: str(v))
def test_columns_hold_the_longest_value(table: str, column: str) -> None:
    """VARCHAR(n) counts characters; a limit in bytes is never more characters, so n >= limit suffices.
    PostgreSQL enforces n (SQLite does not): a narrower column turns a valid request into a 500."""
    assert metadata.tables[table].c[column].type.length >= STORED[(table, column)]
