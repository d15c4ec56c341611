"""The package's public surface: __all__ lists exactly what the HTTP layer and tests import."""

from __future__ import annotations

import token_service
from token_service import grants


def test_all_names_exist() -> None:
    """Every name in token_service.__all__ and grants.__all__ is importable."""
    for module in (token_service, grants):
        assert module.__all__ and all(hasattr(module, name) for name in module.__all__)


def test_all_lists_every_public_name() -> None:
    """No public, non-module attribute of token_service is missing from __all__."""
    public = {
        name
        for name, value in vars(token_service).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("token_service")
    }
    assert public <= set(token_service.__all__)
