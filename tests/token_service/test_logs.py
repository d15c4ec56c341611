"""Structured logs: JSON lines with context, never a token or a password."""

from __future__ import annotations

import io
import json
import logging

import grpc
import pytest

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from native_iam.runtime import logs
from tests.token_service.conftest import add_identity
from token_service.app import TokenServiceApp


def test_json_line_carries_extra_and_redacts() -> None:
    """A record becomes one JSON object; secret-named fields and JWT-shaped values are masked."""
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "got eyJhbGciOi.eyJzdWIiOiJ4.c2ln here", (), None)
    record.password = "hunter2"
    record.identity = "alice"
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["identity"] == "alice" and line["password"] == "[redacted]"
    assert "eyJ" not in line["msg"] and line["level"] == "INFO"


async def test_flow_logs_contain_no_secrets(
    service: TokenServiceApp, oauth: oauth_pb2_grpc.OAuthStub, caplog: pytest.LogCaptureFixture
) -> None:
    """Grants, refreshes and checks (ok and refused) log nothing that holds a password or token."""
    caplog.set_level(logging.DEBUG)
    await add_identity(service.core, "alice", "pw-secret-77", ("a:b",))
    ok = await oauth.CreateTokenWithPassword(
        oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password="pw-secret-77")
    )
    await oauth.CreateTokenWithPassword(
        oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password="pw-wrong-88")
    )
    await oauth.RefreshToken(oauth_pb2.RefreshTokenRequest(refresh_token=ok.refresh_token))
    await oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=ok.access_token, scopes=["nope:x"]))
    with pytest.raises(grpc.aio.AioRpcError):
        await oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token="x" * 9000))
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    for record in caplog.records:
        handler.emit(record)
    text = out.getvalue() + caplog.text
    assert "password grant refused" in text
    for secret in ("pw-secret-77", "pw-wrong-88", ok.access_token, ok.refresh_token):
        assert secret not in text
