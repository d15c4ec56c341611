"""Prometheus metrics: served on their own port, named by convention, clean under promtool."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.request
from pathlib import Path

import grpc

from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc, oauth_pb2, oauth_pb2_grpc
from tests.conftest import require_tool
from tests.token_service.conftest import add_identity
from token_service.testing import FEED_METADATA, running_token_service


async def _scrape(port: int) -> str:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()

    return await asyncio.to_thread(get)


async def test_metrics_after_traffic_pass_promtool(sqlite_url: str, tmp_path: Path) -> None:
    """After grants, checks and a feed subscription, /metrics has the documented series and promtool
    `check metrics` reports nothing."""
    promtool = require_tool("promtool")
    async with running_token_service(sqlite_url, metrics_listen="127.0.0.1:0") as app:
        await add_identity(app.core, "alice", "pw-123456", ("a:b",))
        async with grpc.aio.insecure_channel(app.grpc_target) as channel:
            oauth = oauth_pb2_grpc.OAuthStub(channel)
            ok = await oauth.CreateTokenWithPassword(
                oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password="pw-123456")
            )
            await oauth.CreateTokenWithPassword(
                oauth_pb2.CreateTokenWithPasswordRequest(identity="alice", password="bad")
            )
            await oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=ok.access_token, scopes=["x:y"]))
            stream = (
                feed_pb2_grpc.FeedStub(channel)
                .WatchRevocations(feed_pb2.WatchRevocationsRequest(), metadata=FEED_METADATA)
                .__aiter__()
            )
            await stream.__anext__()
            text = await _scrape(app.metrics_port)
    assert 'native_iam_grants_total{grant="password",status="OK"} 1.0' in text
    assert 'native_iam_grant_denials_total{grant="password",reason="wrong_password"} 1.0' in text
    assert 'native_iam_access_checks_total{status="UNAUTHORIZED"} 1.0' in text
    assert "native_iam_feed_subscribers 1.0" in text
    assert "native_iam_grpc_server_handling_seconds_bucket" in text
    result = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
