"""examples/envoy/ and the sidecar docs: every Envoy YAML is accepted by Envoy, and the docs show it."""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from ..conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "envoy").glob("*.yaml"))
SIDECAR_DOCS = ROOT / "docs" / "sidecar.md"


def _docs_yaml() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", SIDECAR_DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)


def _is_excerpt(block: str, text: str) -> bool:
    """``block`` is consecutive lines of ``text``, possibly with their common indentation removed."""
    wanted = textwrap.dedent(block).splitlines()
    lines = text.splitlines()
    return any(
        textwrap.dedent("\n".join(lines[i : i + len(wanted)])).splitlines() == wanted
        for i in range(len(lines) - len(wanted) + 1)
    )


def _validate(envoy: str, path: Path) -> None:
    result = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(path), "-l", "error"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_are_examples() -> None:
    """examples/envoy/ holds at least one configuration, and the sidecar docs show one."""
    assert EXAMPLES and _docs_yaml()


@pytest.mark.envoy
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid_envoy_config(path: Path) -> None:
    """`envoy --mode validate` accepts each example file."""
    _validate(require_tool("envoy"), path)


def test_docs_yaml_is_an_excerpt_of_the_tested_example() -> None:
    """Every YAML block of the sidecar docs is a verbatim excerpt of an example Envoy validates and the
    end-to-end tests run (so the docs cannot show a configuration nobody tested)."""
    examples = [path.read_text(encoding="utf-8") for path in EXAMPLES]
    blocks = _docs_yaml()
    stray = [b for b in blocks if not any(_is_excerpt(b, example) for example in examples)]
    assert blocks and not stray, stray


def test_docs_link_the_tested_example() -> None:
    """The sidecar docs point at the example file the end-to-end tests run, rather than a copy of it."""
    assert "](../examples/envoy/envoy.yaml)" in SIDECAR_DOCS.read_text(encoding="utf-8")


def test_excerpt_check_refuses_an_edited_block() -> None:
    """The excerpt check is not vacuous: a changed value or a reordered line is no excerpt."""
    text = "a:\n  b: 1\n  c: 2\n"
    assert _is_excerpt("b: 1\nc: 2\n", text)
    assert not _is_excerpt("b: 1\nc: 3\n", text) and not _is_excerpt("c: 2\nb: 1\n", text)
