"""sidecar/__init__.py: the public names."""

from __future__ import annotations

import sidecar


def test_all_names_exist() -> None:
    """Every name in sidecar.__all__ is importable from the package."""
    assert sidecar.__all__ and all(hasattr(sidecar, name) for name in sidecar.__all__)


def test_all_lists_every_public_name() -> None:
    """No public, non-module name is missing from __all__."""
    import types

    public = {n for n, v in vars(sidecar).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public == set(sidecar.__all__)
