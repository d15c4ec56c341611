"""Malformed gRPC requests to every method of the token service: INVALID_ARGUMENT, never INTERNAL.

Swept over every method of OAuth, Feed and the admin services (with a valid admin token, or the
feed token for Feed, so requests get past authorization): bytes that are not a protobuf message, invalid UTF-8 in each
string field (what grpcio would turn into INTERNAL if the service let the runtime parse it), each
string field oversized (64 KiB) and each repeated string field with 1,000 oversized entries. The
sidecar's OAuth facade gets the same sweep. tests/token_service/api/grpc/test_grpc_api.py covers the seed
RPCs' individual limits; this covers every method at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor

from native_iam.admin.v1 import admin_pb2
from native_iam.oauth.v1 import feed_pb2, oauth_pb2
from tests.sidecar._stack import in_process_sidecar
from token_service.app import TokenServiceApp
from token_service.cli import bootstrap_admin
from token_service.grants import create_token_with_password
from token_service.testing import FEED_METADATA

ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
METHODS = [
    (module, service, method)
    for module in (oauth_pb2, feed_pb2, admin_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string_fields(descriptor: Any) -> list[Any]:
    return [f for f in descriptor.fields if f.type == FieldDescriptor.TYPE_STRING]


def _cases(method: Any) -> list[tuple[str, bytes, bool]]:
    """(name, raw request bytes, must be INVALID_ARGUMENT)."""
    cases = [
        ("not_protobuf", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", True),
        ("truncated_length", b"\x0a\x7f" + b"a" * 3, True),
        ("group_wire_type", b"\x0b\x0c", False),
    ]
    for f in _string_fields(method.input_type):
        cases.append((f"{f.name}_invalid_utf8", _field(f.number, b"ok\xff\xfe\xc0\xaf"), True))
        cases.append((f"{f.name}_64KiB", _field(f.number, b"a" * 65536), False))
        if f.is_repeated:
            cases.append((f"{f.name}_1000x4KiB", _field(f.number, b"b" * 4096) * 1000, False))
    return cases


IDS = [f"{service.name}.{method.name}" for _, service, method in METHODS]


@pytest.fixture
async def admin_metadata(service: TokenServiceApp) -> list[tuple[str, str]]:
    await bootstrap_admin(service.core, "root", "root-pass-for-grpc-sweep")
    issued = await create_token_with_password(
        service.core, namespace="", identity="root", password="root-pass-for-grpc-sweep", scopes=["iam:admin"]
    )
    return [("authorization", f"Bearer {issued.access_token}")]


async def _call(channel: grpc.aio.Channel, service: str, method: Any, raw: bytes, metadata: Any) -> grpc.StatusCode:
    path = f"/{service}/{method.name}"
    identity = lambda b: b  # noqa: E731 - raw bytes in, raw bytes out
    try:
        if method.server_streaming:
            call = channel.unary_stream(path, request_serializer=identity, response_deserializer=identity)
            stream = call(raw, metadata=metadata, timeout=5)
            async for _ in stream:
                stream.cancel()  # a valid subscription: one message is enough
                return grpc.StatusCode.OK
            return grpc.StatusCode.OK
        call = channel.unary_unary(path, request_serializer=identity, response_deserializer=identity)
        await call(raw, metadata=metadata, timeout=10)
        return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        return exc.code()


def _judge(code: grpc.StatusCode, strict: bool, allowed: set[grpc.StatusCode]) -> bool:
    return code == grpc.StatusCode.INVALID_ARGUMENT if strict else code in allowed


@pytest.mark.parametrize(("module", "rpc_service", "method"), METHODS, ids=IDS)
async def test_malformed_request_is_invalid_argument_never_internal(
    channel: grpc.aio.Channel, admin_metadata: list[tuple[str, str]], module: Any, rpc_service: Any, method: Any
) -> None:
    """Each malformed request to this method gets INVALID_ARGUMENT (undecodable, invalid UTF-8) or a
    business answer (oversized but decodable), and never INTERNAL or UNKNOWN."""
    wrong = {}
    # The feed's credential is the feed token, the admin services' an admin access token.
    metadata = list(FEED_METADATA) if module is feed_pb2 else admin_metadata
    for name, raw, strict in _cases(method):
        code = await _call(channel, rpc_service.full_name, method, raw, metadata)
        if not _judge(code, strict, ALLOWED):
            wrong[name] = code.name
    assert not wrong, wrong


@pytest.fixture
async def facade_port(service: TokenServiceApp, tmp_path: Path) -> AsyncIterator[int]:
    """The sidecar's OAuth facade (in process, one worker) in front of the token service."""
    async with in_process_sidecar(service.grpc_target, service.settings.issuer) as sidecar:
        yield sidecar.oauth_port


FACADE = [m for m in METHODS if m[1].full_name == "native_iam.oauth.v1.OAuth"]


@pytest.mark.parametrize(("module", "rpc_service", "method"), FACADE, ids=[m[2].name for m in FACADE])
async def test_facade_malformed_request_is_never_internal(
    facade_port: int, module: Any, rpc_service: Any, method: Any
) -> None:
    """The sidecar's OAuth facade answers the same malformed requests without INTERNAL or UNKNOWN."""
    wrong = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{facade_port}") as channel:
        for name, raw, strict in _cases(method):
            code = await _call(channel, rpc_service.full_name, method, raw, None)
            if not _judge(code, strict, ALLOWED | {grpc.StatusCode.UNAVAILABLE}):
                wrong[name] = code.name
    assert not wrong, wrong
