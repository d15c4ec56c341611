"""Rendered Kubernetes manifests, shared by the deploy tests (rendering once per session)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"

# What `kubectl apply -k` would receive. "production+COMPONENT" is production with that optional
# component enabled, the way docs/kubernetes.md and docs/token-service.md (Redis) tells an operator to
# enable it; "dev+istio" the dev overlay's example workload in an Istio mesh (docs/istio.md).
RENDERINGS = (
    "base",
    "overlays/dev",
    "overlays/production",
    "production+prometheus-operator",
    "production+redis",
    "dev+istio",
)
# Composed renderings other than production+COMPONENT: (overlay, optional component, namespace).
_COMPOSED = {"dev+istio": ("overlays/dev", "components/istio", "native-iam-dev")}


@dataclass(frozen=True)
class Rendering:
    name: str
    yaml_text: str
    docs: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name_prefix: str) -> dict[str, Any]:
        """The one object of ``kind`` whose name starts with ``name_prefix`` (generated names carry a hash)."""
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"].startswith(name_prefix)]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name_prefix}*, found {len(found)}"
        return found[0]


def kustomize(directory: Path) -> str:
    kubectl = require_tool("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return result.stdout


def _with_component(tmp: Path, overlay: str, component: str, namespace: str) -> Path:
    """A throw-away kustomization: ``overlay`` plus ``component`` (kustomize wants relative paths)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": namespace,
                "resources": [os.path.relpath(K8S / overlay, tmp)],
                "components": [os.path.relpath(K8S / component, tmp)],
            }
        )
    )
    return tmp


@pytest.fixture(scope="session")
def renderings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendering]:
    out: dict[str, Rendering] = {}
    for name in RENDERINGS:
        if name in _COMPOSED:
            directory = _with_component(tmp_path_factory.mktemp("k8s"), *_COMPOSED[name])
        elif name.startswith("production+"):
            component = f"components/{name.partition('+')[2]}"
            directory = _with_component(tmp_path_factory.mktemp("k8s"), "overlays/production", component, "native-iam")
        else:
            directory = K8S / name
        text = kustomize(directory)
        docs = tuple(d for d in yaml.safe_load_all(text) if d)
        out[name] = Rendering(name, text, docs)
    return out


@pytest.fixture(params=RENDERINGS)
def rendering(request: pytest.FixtureRequest, renderings: dict[str, Rendering]) -> Rendering:
    return renderings[request.param]


def containers(deployment: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]
