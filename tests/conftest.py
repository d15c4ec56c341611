"""Suite-wide fixtures and helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# One PostgreSQL per session for every directory outside tests/token_service (which still defines
# its own, so at most two run): the reliability and security tests reuse the token service's fixture.
from tests.token_service.conftest import postgres_server, redis_server, redis_url

__all__ = ["one_line_refusal", "postgres_server", "redis_server", "redis_url", "require_tool"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def one_line_refusal(result: subprocess.CompletedProcess[str], prefix: str) -> str:
    """The single stderr line (starting with ``prefix``) with which a command refused to start:
    exit 1, no traceback, exactly one such line — what both roles promise for a bad setting."""
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    lines = {line for line in result.stderr.splitlines() if line.startswith(prefix)}
    assert len(lines) == 1, result.stderr[-2000:]
    return lines.pop()


def require_tool(name: str) -> str:
    """Return the path of the executable ``name``.

    Locally a missing tool skips the test with a message saying what to install; in CI it fails
    the test, so a missing install step can never turn the suite green by skipping.
    """
    # Tools that come as wheels (envoy, kubectl, hadolint, kubernetes-validate) sit beside the
    # interpreter: found there too when the suite runs as .venv/bin/python without .venv/bin on PATH.
    path = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if path is None:
        message = f"{name!r} is not installed (./dev test installs it: a Debian package or a test wheel)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (soak and long fuzz runs) only run when ``-m`` selects them.

    A plain ``pytest`` (and ``.ci/run``) skips them, so the suite stays within its time budget;
    ``pytest -m slow`` runs exactly them.
    """
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
