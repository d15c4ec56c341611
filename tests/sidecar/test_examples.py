"""examples/envoy/ and the README's sidecar section: every Envoy YAML is accepted by Envoy."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ..conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "envoy").glob("*.yaml"))


def _readme_section_yaml() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Envoy ext_authz sidecar")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```yaml\n(.*?)```", text[start:end], flags=re.DOTALL)


def _validate(envoy: str, path: Path) -> None:
    result = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(path), "-l", "error"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_are_examples() -> None:
    """examples/envoy/ holds at least one configuration, and the README shows one."""
    assert EXAMPLES and _readme_section_yaml()


@pytest.mark.envoy
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid_envoy_config(path: Path) -> None:
    """`envoy --mode validate` accepts each example file."""
    _validate(require_tool("envoy"), path)


@pytest.mark.envoy
def test_readme_yaml_is_valid_envoy_config(tmp_path: Path) -> None:
    """`envoy --mode validate` accepts every YAML block of the README's sidecar section."""
    envoy = require_tool("envoy")
    for i, block in enumerate(_readme_section_yaml()):
        path = tmp_path / f"readme-{i}.yaml"
        path.write_text(block)
        _validate(envoy, path)


def test_readme_shows_the_tested_example() -> None:
    """The README's configuration is the example file the end-to-end tests run, byte for byte."""
    assert (ROOT / "examples" / "envoy" / "envoy.yaml").read_text() in _readme_section_yaml()
