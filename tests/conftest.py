"""Suite-wide fixtures and helpers."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(name: str) -> str:
    """Return the path of the executable ``name``.

    Locally a missing tool skips the test with a message saying what to install; in CI it fails
    the test, so a missing install step can never turn the suite green by skipping.
    """
    path = shutil.which(name)
    if path is None:
        message = f"{name!r} is not on PATH (./dev test installs it on Debian)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path
