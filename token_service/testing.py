"""Starting a real token service in-process, for tests and benchmarks.

    async with running_token_service(db_url="sqlite:///tmp/x.db") as app:
        channel = grpc.aio.insecure_channel(app.grpc_target)

Defaults suit tests: 127.0.0.1 on a free port, no metrics listener, cheap argon2 parameters
(override ``argon2_memory_kib`` etc. to measure the real cost).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from token_service.app import TokenServiceApp
from token_service.settings import Settings

__all__ = ["FEED_METADATA", "TEST_FEED_TOKEN", "TEST_OVERRIDES", "running_token_service", "settings_for_tests"]

#: The revocation feed's credential in tests and benchmarks (NATIVE_IAM_FEED_TOKEN of both roles).
TEST_FEED_TOKEN = "test-feed-token-0123456789abcdef0123456789abcdef"
#: The gRPC metadata a feed subscriber sends with WatchRevocations.
FEED_METADATA = (("authorization", f"Bearer {TEST_FEED_TOKEN}"),)

#: Settings overrides that make a service fast and isolated for tests.
TEST_OVERRIDES: dict[str, Any] = {
    "grpc_listen": "127.0.0.1:0",
    "http_listen": "127.0.0.1:0",
    "metrics_listen": "off",
    "argon2_memory_kib": 256,
    "argon2_time_cost": 1,
    "key_publish_delay_s": 0,
    "shutdown_grace_s": 0.5,
    "feed_heartbeat_s": 0.5,
    "feed_poll_s": 0.05,
    "log_format": "text",
    "feed_tokens": (TEST_FEED_TOKEN,),
}


def settings_for_tests(db_url: str, **overrides: Any) -> Settings:
    """Settings from defaults (not the environment) with :data:`TEST_OVERRIDES` and ``overrides``."""
    return Settings.from_env({}, db_url=db_url, **{**TEST_OVERRIDES, **overrides})


@asynccontextmanager
async def running_token_service(db_url: str, **overrides: Any) -> AsyncIterator[TokenServiceApp]:
    app = TokenServiceApp(settings_for_tests(db_url, **overrides))
    await app.start()
    try:
        yield app
    finally:
        await app.stop(0)
