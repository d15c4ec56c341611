"""sidecar/route_table_file.py: load at start, reload on change, keep the last good table, say so."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sidecar.metrics import Metrics
from sidecar.route_table_file import RouteTableError, RouteTableFile

GOOD_A = "routes:\n  - match: {prefix: /a}\n    require: {scopes: a}\n"
GOOD_B = "routes:\n  - match: {prefix: /b}\n    require: {scopes: b}\n  - match: {path: /b/x}\n    require: {}\n"
BAD = "routes:\n  - match: {prefix: /a}\n    require: {scope: typo}\n"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def _write(path: Path, text: str) -> None:
    """Replace the file the way editors and kubectl cp do: a new inode moved into place."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_good_bad_good_keeps_the_last_good_table_and_reports_it(
    tmp_path: Path, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad version keeps the table in force, logs one line naming file and line, and sets valid=0;
    the next good version replaces it and sets valid=1."""
    path = tmp_path / "routes.yaml"
    path.write_text(GOOD_A)
    clock = Clock()
    routes = RouteTableFile(str(path), Metrics(registry), clock=clock)
    assert _sample(registry, "native_iam_sidecar_route_table_valid") == 1
    assert _sample(registry, "native_iam_sidecar_route_table_rules") == 1
    assert routes.poll() is None  # unchanged

    _write(path, BAD)
    assert not routes.due()
    clock.now += 1.0
    assert routes.due()
    with caplog.at_level(logging.ERROR, logger="sidecar.route_table"):
        assert routes.poll() is False
    assert routes.current().match("h", "GET", "/a/1") is not None  # the last good table
    assert _sample(registry, "native_iam_sidecar_route_table_valid") == 0
    assert _sample(registry, "native_iam_sidecar_route_table_reloads_total", result="invalid") == 1
    [record] = [r for r in caplog.records if r.name == "sidecar.route_table"]
    assert str(path) in record.error and "line 2" in record.error and "'scope'" in record.error  # type: ignore[attr-defined]
    assert routes.poll() is None  # the same bad file is not reported again

    _write(path, GOOD_B)
    assert routes.poll() is True
    assert routes.current().match("h", "GET", "/a/1") is None
    assert routes.current().match("h", "GET", "/b/1") is not None
    assert _sample(registry, "native_iam_sidecar_route_table_valid") == 1
    assert _sample(registry, "native_iam_sidecar_route_table_rules") == 2
    assert _sample(registry, "native_iam_sidecar_route_table_reloads_total", result="ok") == 1


def test_configmap_symlink_swap_is_picked_up(tmp_path: Path, registry: CollectorRegistry) -> None:
    """Kubernetes swaps the ..data symlink to a new directory: the path through the symlinks changes."""
    mount = tmp_path / "routes"
    mount.mkdir()
    for version, text in (("..v1", GOOD_A), ("..v2", GOOD_B)):
        (mount / version).mkdir()
        (mount / version / "routes.yaml").write_text(text)
    (mount / "..data").symlink_to("..v1")
    (mount / "routes.yaml").symlink_to("..data/routes.yaml")
    routes = RouteTableFile(str(mount / "routes.yaml"), Metrics(registry))
    assert routes.current().match("h", "GET", "/a") is not None

    (mount / "..data_tmp").symlink_to("..v2")
    os.replace(mount / "..data_tmp", mount / "..data")  # atomic, as the kubelet does
    assert routes.poll() is True
    assert routes.current().match("h", "GET", "/b") is not None


def test_a_deleted_file_keeps_the_last_good_table(tmp_path: Path, registry: CollectorRegistry) -> None:
    """A file that disappears is invalid: the table stays, valid=0."""
    path = tmp_path / "routes.yaml"
    path.write_text(GOOD_A)
    routes = RouteTableFile(str(path), Metrics(registry))
    path.unlink()
    assert routes.poll() is False
    assert routes.current().match("h", "GET", "/a") is not None
    assert _sample(registry, "native_iam_sidecar_route_table_valid") == 0


def test_invalid_at_start_raises_naming_file_and_line(tmp_path: Path) -> None:
    """At start an invalid file is an error naming the file and the line, never an empty table."""
    path = tmp_path / "routes.yaml"
    path.write_text(BAD)
    with pytest.raises(RouteTableError, match=rf"{path}: line 2: routes\[0\]\.require: unknown key 'scope'"):
        RouteTableFile(str(path))
    with pytest.raises(RouteTableError, match="cannot read"):
        RouteTableFile(str(tmp_path / "missing.yaml"))
    path.write_bytes(b"routes: [\xff]")
    with pytest.raises(RouteTableError, match="not UTF-8"):
        RouteTableFile(str(path))


def test_metrics_say_valid_without_a_table(registry: CollectorRegistry) -> None:
    """Without a table the valid gauge is 1 (the alert must not fire) and the rule count 0."""
    Metrics(registry)
    assert _sample(registry, "native_iam_sidecar_route_table_valid") == 1
    assert _sample(registry, "native_iam_sidecar_route_table_rules") == 0
