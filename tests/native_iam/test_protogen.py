"""The committed gRPC stubs match what ``python -m native_iam._protogen`` generates."""

from __future__ import annotations

import filecmp
from pathlib import Path

from native_iam import _protogen


def test_committed_stubs_are_current(tmp_path: Path) -> None:
    """Regenerating from proto/ into a temp dir gives byte-identical stubs."""
    _protogen.generate(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*.py*"))
    assert generated, "protoc produced nothing"
    stale = [str(rel) for rel in generated if not filecmp.cmp(tmp_path / rel, _protogen.ROOT / rel, shallow=False)]
    assert not stale, f"stale stubs (run ./dev protos): {stale}"


def test_every_proto_has_stubs() -> None:
    """No proto file is missing its committed stubs."""
    for proto in _protogen.proto_files():
        module = _protogen.ROOT / proto.relative_to(_protogen.PROTO_DIR).with_suffix("")
        assert Path(f"{module}_pb2.py").exists(), proto
        assert Path(f"{module}_pb2_grpc.py").exists(), proto
