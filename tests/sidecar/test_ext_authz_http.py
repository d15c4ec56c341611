"""sidecar/ext_authz_http.py: the HTTP transport decides like the gRPC one, and stays bounded.

A real server on a loopback port in the test's event loop, spoken to over raw sockets (so that
malformed, pipelined, slow and oversized requests can be sent exactly).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2
from google.protobuf import struct_pb2
from google.rpc import code_pb2

from native_iam.oauth.v1 import feed_pb2
from native_iam.runtime.listen import bind_tcp
from sidecar import ext_authz_http
from sidecar.ext_authz_http import REQUIREMENT_HEADER, HttpAuthz
from sidecar.keys import KeyStore

from ._feed import Issuer, Kind, revocation
from .test_authorization import R, Rig, T


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


async def _read_answer(reader: asyncio.StreamReader, *, head: bool = False) -> Answer:
    status_line = await asyncio.wait_for(reader.readline(), 5)
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Answer(int(status_line.split()[1]), headers, body)


def _raw(
    method: str = "GET", path: str = "/orders", token: str | None = None, requirement: str | None = None, **headers: str
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: orders.test"]
    if token is not None:
        lines.append(f"authorization: Bearer {token}")
    if requirement is not None:
        lines.append(f"{REQUIREMENT_HEADER}: {requirement}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Served:
    def __init__(self, rig: Rig, server: HttpAuthz, port: int) -> None:
        self.rig, self.server, self.port = rig, server, port

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def ask(self, data: bytes, *, head: bool = False) -> Answer:
        reader, writer = await self.connect()
        try:
            writer.write(data)
            return await _read_answer(reader, head=head)
        finally:
            writer.close()


@pytest.fixture
async def served(issuer: Issuer) -> AsyncIterator[Served]:
    rig = Rig(issuer)
    server = HttpAuthz(rig.authorizer, max_token_bytes=8192)
    port = await server.start(bind_tcp("127.0.0.1:0", "TEST"))
    try:
        yield Served(rig, server, port)
    finally:
        await server.stop()


# ---- the same decisions as over gRPC ----


def _grpc(rig: Rig, method: str, path: str, token: str | None, requirement: dict | None) -> tuple:
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.path, http.host = method, path, "orders.test"
    if token is not None:
        http.headers["authorization"] = f"Bearer {token}"
    if requirement is not None:
        s = struct_pb2.Struct()
        s.update(requirement)
        request.attributes.route_metadata_context.filter_metadata["native_iam"].CopyFrom(s)
    response = external_auth_pb2.CheckResponse.FromString(rig.grpc.check_sync(request))
    if response.status.code == code_pb2.OK:
        ok = response.ok_response
        return 200, {o.header.key: o.header.value for o in ok.headers}, sorted(ok.headers_to_remove), b""
    d = response.denied_response
    return d.status.code, {o.header.key: o.header.value for o in d.headers}, [], d.body.encode()


def _http(answer: Answer) -> tuple:
    headers = {k: v for k, v in answer.headers.items() if k not in ("content-length", "x-envoy-auth-headers-to-remove")}
    removed = answer.headers.get("x-envoy-auth-headers-to-remove")
    return answer.status, headers, sorted(removed.split(", ")) if removed else [], answer.body


async def test_every_answer_is_the_grpc_transports(served: Served, issuer: Issuer) -> None:
    """Status, WWW-Authenticate, JSON body, identity headers and removals: the same over both transports."""
    other = Issuer(kid="k1")  # same kid, another key: a bad signature
    cases: list[tuple[str, str, str | None, dict | None]] = [
        ("GET", "/orders", issuer.mint("alice", "orders:read", namespace="shop", jti="j1"), None),
        ("GET", "/orders", issuer.mint(namespace=None), {"scopes": "orders:read"}),
        ("GET", "/orders", None, None),
        ("GET", "/orders", "not-a-jwt", None),
        ("GET", "/orders", other.mint(), None),
        ("POST", "/orders", issuer.mint(scope="orders:read"), {"methods": {"POST": {"scopes": "orders:write"}}}),
        ("GET", "/healthz", None, {"anonymous": True}),
        ("GET", "/%61dmin", issuer.mint(), None),
        ("GET", "/a/../admin", issuer.mint(), None),
        ("GET", "/orders", issuer.mint(), {"scopes": "Not A Scope"}),
        ("GET", "/orders", issuer.mint(), {"colour": "blue"}),
    ]
    for method, path, token, requirement in cases:
        answer = await served.ask(_raw(method, path, token, json.dumps(requirement) if requirement else None))
        assert _http(answer) == _grpc(served.rig, method, path, token, requirement), (method, path, requirement)


async def test_insufficient_scope_names_the_scope(served: Served, issuer: Issuer) -> None:
    answer = await served.ask(_raw(token=issuer.mint(scope="a:b"), requirement='{"scopes": "orders:write"}'))
    assert answer.status == 403 and 'scope="orders:write"' in answer.headers["www-authenticate"]
    assert answer.json()["error"] == "insufficient_scope"


async def test_revoked_token_is_denied(served: Served, issuer: Issuer) -> None:
    token = issuer.mint(jti="gone")
    assert (await served.ask(_raw(token=token))).status == 200
    served.rig.revocations.apply(
        feed_pb2.WatchRevocationsResponse(
            kind=Kind.EVENTS, cursor=1, revocations=[revocation(1, T.TOKEN, R.TOKEN_DISABLED, jti="gone")]
        )
    )
    answer = await served.ask(_raw(token=token))
    assert answer.status == 401 and answer.json()["error"] == "invalid_token"


async def test_keep_alive_and_pipelining_answer_in_order(served: Served, issuer: Issuer) -> None:
    """Several requests in one write on one connection: one answer each, in order."""
    reader, writer = await served.connect()
    writer.write(_raw(token=issuer.mint()) + _raw() + _raw(requirement='{"anonymous": true}'))
    statuses = [(await _read_answer(reader)).status for _ in range(3)]
    writer.write(_raw(token=issuer.mint()))
    statuses.append((await _read_answer(reader)).status)
    writer.close()
    assert statuses == [200, 401, 200, 200]


async def test_unknown_kid_waits_for_the_refetch_without_reordering(issuer: Issuer) -> None:
    """A token with a new kid is decided after the JWKS refetch; a request pipelined behind it is answered after it."""
    new = Issuer(kid="k2")
    jwks = [issuer.jwks_json()]
    store = KeyStore(lambda: (jwks[0], 300.0), max_age_s=60, min_refetch_s=0)
    store.refresh()
    rig = Rig(issuer, keys=store)
    server = HttpAuthz(rig.authorizer, max_token_bytes=8192)
    port = await server.start(bind_tcp("127.0.0.1:0", "TEST"))
    try:
        jwks[0] = issuer.jwks_json(new.jwk)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_raw(token=new.mint()) + _raw())
        first, second = await _read_answer(reader), await _read_answer(reader)
        writer.close()
        assert (first.status, second.status) == (200, 401)
    finally:
        await server.stop()
        store.close()


async def test_head_answer_has_no_body(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(_raw("HEAD") + _raw())
    head = await _read_answer(reader, head=True)
    after = await _read_answer(reader)  # would be garbage if the HEAD answer had carried a body
    writer.close()
    assert head.status == 401 and int(head.headers["content-length"]) > 0 and after.status == 401


# ---- refusals: never a 200, never a 500 ----


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /orders HTTP/1.1\r\nbad header line\r\n\r\n",
        b"GET /orders HTTP/1.1\r\nx-pad: " + b"a" * 40_000 + b"\r\n\r\n",
        b"GET /" + b"a" * 40_000 + b" HTTP/1.1\r\n\r\n",
    ],
    ids=["garbage", "bad-header", "huge-header", "huge-url"],
)
async def test_malformed_requests_are_400_and_the_connection_closes(served: Served, data: bytes) -> None:
    reader, writer = await served.connect()
    writer.write(data)
    answer = await _read_answer(reader)
    assert answer.status == 400 and answer.json()["error"] == "invalid_request"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
    writer.close()
    assert served.rig.count("deny", "malformed") == 1


async def test_upgrade_is_decided_and_the_connection_closes(served: Served) -> None:
    """An Upgrade request is decided as a plain request (no token: 401); no protocol switch follows."""
    reader, writer = await served.connect()
    writer.write(b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n" + _raw())
    assert (await _read_answer(reader)).status == 401
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_oversized_body_is_refused(served: Served, issuer: Issuer) -> None:
    reader, writer = await served.connect()
    writer.write(b"POST /orders HTTP/1.1\r\ncontent-length: 100000\r\n\r\n" + b"x" * 100_000)
    assert (await _read_answer(reader)).status == 400
    writer.close()


async def test_a_slow_request_is_cut_off(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that never finishes its request gets a 400 once the request timeout passes."""
    monkeypatch.setattr(ext_authz_http, "REQUEST_TIMEOUT_S", 0.2)
    reader, writer = await served.connect()
    writer.write(b"GET /orders HTTP/1.1\r\nhost: x\r\n")  # never ends
    answer = await asyncio.wait_for(_read_answer(reader), 10)
    assert answer.status == 400 and "in time" in answer.json()["error_description"]
    writer.close()


async def test_idle_keep_alive_connections_are_closed(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ext_authz_http, "IDLE_TIMEOUT_S", 0.2)
    reader, _ = await served.connect()
    assert await asyncio.wait_for(reader.read(), 10) == b""


async def test_connection_cap(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_CONNECTIONS a new connection is closed at once; the open ones keep working."""
    monkeypatch.setattr(ext_authz_http, "MAX_CONNECTIONS", 2)
    held = [await served.connect() for _ in range(2)]
    await asyncio.sleep(0.1)
    reader, writer = await served.connect()
    writer.write(_raw())
    assert await asyncio.wait_for(reader.read(), 5) == b""
    held[0][1].write(_raw())
    assert (await _read_answer(held[0][0])).status == 401
    for _, w in held:
        w.close()
    writer.close()


async def test_internal_error_is_a_500_deny(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(served.server, "decide", boom)
    answer = await served.ask(_raw(token="x"))
    assert answer.status == 500 and answer.json()["error"] == "server_error"
    assert served.rig.count("deny", "internal") == 1
