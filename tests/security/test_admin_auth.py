"""Every admin RPC refuses every caller that is not a current iam:admin bearer.

Swept over every method of every service in admin.proto (Identities, Tokens, Keys, Clients, and
any added later), with well-formed requests so that authorization — not input validation — is
what answers: no token, another scheme, a garbage token, a token without ``iam:admin``, the
admin's refresh token, an expired, a disabled and a deleted admin token, a token of a disabled
admin identity, and two ``authorization`` entries. A refused call changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf.descriptor import FieldDescriptor

from native_iam.admin.v1 import admin_pb2 as pb
from tests.token_service.conftest import add_identity
from token_service.admin import service as admin
from token_service.app import TokenServiceApp
from token_service.cli import bootstrap_admin
from token_service.grants import create_token_with_password

ADMIN_PASSWORD = "root-pass-for-admin-auth"
METHODS = [
    (service.full_name, method.name, getattr(pb, method.input_type.name), getattr(pb, method.output_type.name))
    for service in pb.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]


def _well_formed(request_cls: type[Any]) -> Any:
    """A request that passes input validation: every singular string set, identity refs named."""
    request = request_cls()
    for f in request.DESCRIPTOR.fields:
        if f.is_repeated or f.name == "namespace":  # global identities: namespace stays empty
            continue
        if f.type == FieldDescriptor.TYPE_STRING:
            setattr(request, f.name, "victim" if f.name in ("name", "identity") else "web-client-1")
        elif f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.name == "IdentityRef":
            getattr(request, f.name).name = "victim"
    return request


@pytest.fixture
async def tokens(service: TokenServiceApp) -> dict[str, str]:
    """The admin's access and refresh tokens, and a plain user's access token."""
    await bootstrap_admin(service.core, "root", ADMIN_PASSWORD)
    await add_identity(service.core, "victim", policy=("orders:read",))
    await add_identity(service.core, "user", policy=("orders:read",))
    issued = await create_token_with_password(
        service.core, namespace="", identity="root", password=ADMIN_PASSWORD, scopes=["iam:admin"]
    )
    user = await create_token_with_password(service.core, namespace="", identity="user", password="s3cret-pass")
    assert issued.refresh_token is not None
    return {"admin": issued.access_token, "admin_refresh": issued.refresh_token, "user": user.access_token}


def _jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


async def _expire(service: TokenServiceApp, tokens: dict[str, str]) -> None:
    service.core.clock = lambda: time.time() + 3601


async def _disable_token(service: TokenServiceApp, tokens: dict[str, str]) -> None:
    await admin.set_token_active(service.core, _jti(tokens["admin"]), False)


async def _delete_token(service: TokenServiceApp, tokens: dict[str, str]) -> None:
    await admin.delete_token(service.core, _jti(tokens["admin"]))


async def _disable_identity(service: TokenServiceApp, tokens: dict[str, str]) -> None:
    await admin.set_identity_active(service.core, "", "root", False)


async def _nothing(service: TokenServiceApp, tokens: dict[str, str]) -> None:
    pass


Setup = Callable[[TokenServiceApp, dict[str, str]], Any]
CALLERS: list[tuple[str, Setup, Callable[[dict[str, str]], list[tuple[str, str]]], grpc.StatusCode]] = [
    ("no_token", _nothing, lambda t: [], grpc.StatusCode.UNAUTHENTICATED),
    ("basic_scheme", _nothing, lambda t: [("authorization", "Basic cm9vdDpwYXNz")], grpc.StatusCode.UNAUTHENTICATED),
    ("garbage", _nothing, lambda t: [("authorization", "Bearer a.b.c")], grpc.StatusCode.UNAUTHENTICATED),
    (
        "no_admin_scope",
        _nothing,
        lambda t: [("authorization", f"Bearer {t['user']}")],
        grpc.StatusCode.PERMISSION_DENIED,
    ),
    (
        "admin_refresh_token",
        _nothing,
        lambda t: [("authorization", f"Bearer {t['admin_refresh']}")],
        grpc.StatusCode.UNAUTHENTICATED,
    ),
    ("expired", _expire, lambda t: [("authorization", f"Bearer {t['admin']}")], grpc.StatusCode.UNAUTHENTICATED),
    (
        "disabled",
        _disable_token,
        lambda t: [("authorization", f"Bearer {t['admin']}")],
        grpc.StatusCode.UNAUTHENTICATED,
    ),
    ("deleted", _delete_token, lambda t: [("authorization", f"Bearer {t['admin']}")], grpc.StatusCode.UNAUTHENTICATED),
    (
        "identity_disabled",
        _disable_identity,
        lambda t: [("authorization", f"Bearer {t['admin']}")],
        grpc.StatusCode.UNAUTHENTICATED,
    ),
    (
        "two_authorization_entries",
        _nothing,
        lambda t: [("authorization", f"Bearer {t['admin']}"), ("authorization", f"Bearer {t['user']}")],
        grpc.StatusCode.UNAUTHENTICATED,
    ),
]


@pytest.mark.parametrize(("name", "setup", "metadata", "code"), CALLERS, ids=[c[0] for c in CALLERS])
async def test_every_admin_rpc_refuses(
    service: TokenServiceApp,
    channel: grpc.aio.Channel,
    tokens: dict[str, str],
    name: str,
    setup: Setup,
    metadata: Callable[[dict[str, str]], list[tuple[str, str]]],
    code: grpc.StatusCode,
) -> None:
    """Each admin method answers this caller with the expected refusal, and nothing changes."""
    await setup(service, tokens)
    before = (await admin.get_identity(service.core, "", "victim"), await admin.count_tokens(service.core))
    wrong = {}
    for service_name, method, request_cls, response_cls in METHODS:
        call = channel.unary_unary(
            f"/{service_name}/{method}",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        try:
            await call(_well_formed(request_cls), metadata=metadata(tokens), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != code:
                wrong[f"{service_name}/{method}"] = exc.code().name
        else:
            wrong[f"{service_name}/{method}"] = "OK"
    assert len(METHODS) >= 18
    assert not wrong, wrong
    after = (await admin.get_identity(service.core, "", "victim"), await admin.count_tokens(service.core))
    assert after == before


async def test_control_admin_token_is_accepted(
    service: TokenServiceApp, channel: grpc.aio.Channel, tokens: dict[str, str]
) -> None:
    """The same sweep's well-formed request with the current admin token is authorized (not refused)."""
    call = channel.unary_unary(
        "/native_iam.admin.v1.Identities/GetIdentity",
        request_serializer=pb.IdentityRef.SerializeToString,
        response_deserializer=pb.Identity.FromString,
    )
    identity = await call(_well_formed(pb.IdentityRef), metadata=[("authorization", f"Bearer {tokens['admin']}")])
    assert identity.name == "victim"


def _malformed(request_cls: type[Any]) -> Any:
    """A request that fails input validation: every singular string invalid, identity refs unnamed."""
    request = request_cls()
    for f in request.DESCRIPTOR.fields:
        if not f.is_repeated and f.type == FieldDescriptor.TYPE_STRING:
            setattr(request, f.name, "not a valid name/\u2028" * 40)
    return request


async def test_authorization_comes_before_input_validation(service: TokenServiceApp, channel: grpc.aio.Channel) -> None:
    """A caller without a token sending a malformed request to any admin method is UNAUTHENTICATED:
    it never learns the validation rules (INVALID_ARGUMENT) without being an admin."""
    wrong = {}
    for service_name, method, request_cls, response_cls in METHODS:
        call = channel.unary_unary(
            f"/{service_name}/{method}",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        try:
            await call(_malformed(request_cls), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                wrong[f"{service_name}/{method}"] = exc.code().name
        else:
            wrong[f"{service_name}/{method}"] = "OK"
    assert not wrong, wrong
