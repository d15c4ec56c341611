"""The store is a layer: no SQL outside ``token_service/store/``.

Read with :mod:`ast` (not text search), so comments and docstrings that mention SQL don't count and
an aliased import still does. Outside the store a module may hold a transaction (the connection
types, to annotate the ``conn`` it passes on) but may not build or run a statement.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("native_iam", "token_service", "sidecar")
STORE = ROOT / "token_service" / "store"

#: What a module outside the store may import from SQLAlchemy: the connection types, for type hints.
ALLOWED_IMPORTS = frozenset({("sqlalchemy.engine", "Connection"), ("sqlalchemy.ext.asyncio", "AsyncConnection")})
#: Methods that run SQL: only the store calls them.
RUNS_SQL = frozenset({"execute", "executemany", "exec_driver_sql", "scalar", "scalars"})


def _product_modules() -> Iterator[Path]:
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if STORE not in path.parents and "_pb2" not in path.name:
                yield path


def _violations(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "sqlalchemy" or alias.name.startswith("sqlalchemy."):
                    yield f"{where}: import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            if module == "sqlalchemy" or module.startswith("sqlalchemy."):
                for alias in node.names:
                    if (module, alias.name) not in ALLOWED_IMPORTS:
                        yield f"{where}: from {module} import {alias.name}"
            elif module == "token_service.store.tables":  # tables are what statements are built from
                yield f"{where}: from {module} import ..."
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RUNS_SQL:
            yield f"{where}: .{node.func.attr}(...)"


def test_the_rule_sees_sql() -> None:
    """The checker itself finds what it is meant to find (else the test below proves nothing)."""
    sample = ROOT / "token_service" / "store" / "db.py"
    assert any(".execute(" in v for v in _violations(sample))
    assert any("import" in v for v in _violations(sample))


@pytest.mark.parametrize("path", list(_product_modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_sql_outside_the_store(path: Path) -> None:
    assert list(_violations(path)) == []
