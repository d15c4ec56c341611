"""Envoy configurations of the benchmark scenarios (templates in ``bench/envoy/``) and starting
one Envoy from them."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from string import Template

from native_iam._procs import Process, envoy_binary, free_port

CONFIGS = Path(__file__).parent / "envoy"


def render(name: str, **values: object) -> str:
    """The config ``bench/envoy/<name>.yaml`` with ``$placeholders`` filled in."""
    return Template((CONFIGS / f"{name}.yaml").read_text()).substitute({k: str(v) for k, v in values.items()})


def _ready(admin_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=0.5) as response:
            return response.status == 200
    except OSError:
        return False


def start_envoy(name: str, workdir: Path, *, concurrency: int, **values: object) -> tuple[Process, int]:
    """Start Envoy with config ``name``; returns the process and its listener port once ready."""
    listen_port, admin_port = free_port(), free_port()
    config = workdir / f"envoy-{name}.yaml"
    config.write_text(render(name, listen_port=listen_port, admin_port=admin_port, **values))
    argv = [
        envoy_binary(),
        "-c",
        str(config),
        "--concurrency",
        str(concurrency),
        "--disable-hot-restart",
        "--log-level",
        "warning",
    ]
    process = Process(f"envoy-{name}", argv, log_path=workdir / f"envoy-{name}.log").start()
    try:
        process.wait_until(lambda: _ready(admin_port), timeout=30, what="ready")
        process.wait_port("127.0.0.1", listen_port)
    except BaseException:
        process.stop()
        raise
    return process, listen_port


def validate(config_text: str, workdir: Path, name: str) -> None:
    """Fail unless ``envoy --mode validate`` accepts the config."""
    import subprocess

    path = workdir / f"validate-{name}.yaml"
    path.write_text(config_text)
    out = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"envoy rejected {name}:\n{out.stdout}{out.stderr}")
