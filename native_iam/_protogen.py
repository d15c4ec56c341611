"""Regenerate the gRPC stubs from ``proto/``: ``python -m native_iam._protogen``.

The stubs are committed so that installing the package needs no code generator;
``tests/test_protogen.py`` fails when they are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Write ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` for every proto under ``out_dir``."""
    include = Path(protoc.__file__).parent / "_proto"
    for proto in proto_files():
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(proto),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto.relative_to(ROOT)}")
    # Make every generated directory an importable package.
    for proto in proto_files():
        package_dir = out_dir / proto.parent.relative_to(PROTO_DIR)
        for directory in [package_dir, *package_dir.parents]:
            if directory == out_dir or out_dir not in directory.parents:
                break
            (directory / "__init__.py").touch()


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
