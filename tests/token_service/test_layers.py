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


# --- "this token is dead" has one home ---------------------------------------------------------

#: The store functions that make tokens dead or publish feed events, by store module: only
#: token_service/revocations.py calls them, so every state change comes with its event.
DEAD_STATE_WRITERS = {
    "token_service.store.revocations": frozenset({"append", "Event"}),
    "token_service.store.tokens": frozenset({"disable_active", "set_state", "delete_token"}),
    "token_service.store.identities": frozenset({"set_active", "delete", "set_policy_cutoff"}),
    "token_service.store.keys": frozenset({"retire"}),
}
REVOCATIONS = ROOT / "token_service" / "revocations.py"


def _dead_state_writes(source: str, where: str) -> Iterator[str]:
    tree = ast.parse(source)
    aliases: dict[str, frozenset[str]] = {}  # local name of a store module -> its forbidden names
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if node.module in DEAD_STATE_WRITERS and alias.name in DEAD_STATE_WRITERS[node.module]:
                    yield f"{where}:{node.lineno}: from {node.module} import {alias.name}"
                qualified = f"{node.module}.{alias.name}"
                if qualified in DEAD_STATE_WRITERS:
                    aliases[alias.asname or alias.name] = DEAD_STATE_WRITERS[qualified]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in DEAD_STATE_WRITERS and alias.asname:
                    aliases[alias.asname] = DEAD_STATE_WRITERS[alias.name]
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.attr in aliases.get(node.value.id, frozenset())
        ):
            yield f"{where}:{node.lineno}: {node.value.id}.{node.attr}"


def test_the_dead_state_rule_sees_a_writer() -> None:
    sample = (
        "from token_service.store import revocations as log, tokens\n"
        "from token_service.store.keys import retire\n"
        "log.append(conn, [log.Event(target=1, reason=1, expires_unix=0)], 0.0)\n"
        "tokens.set_state(conn, 'j', 'disabled')\n"
        "tokens.record(conn, 'j')\n"
    )
    found = list(_dead_state_writes(sample, "sample"))
    assert len(found) == 4, found  # the import of retire, append, Event, set_state; not record
    assert list(_dead_state_writes(REVOCATIONS.read_text(encoding="utf-8"), "revocations"))


@pytest.mark.parametrize("path", list(_product_modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_revocations_writes_dead_state(path: Path) -> None:
    if path == REVOCATIONS:
        return
    assert list(_dead_state_writes(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))) == []
