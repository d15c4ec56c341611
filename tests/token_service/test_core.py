"""Core: what the domain needs is loaded by Core.start, not by whichever transport starts first."""

from __future__ import annotations

from token_service.core import Core
from token_service.store.clients import client_secret_key


async def test_start_loads_the_client_secret_key_for_every_transport(core: Core) -> None:
    """The admin Clients API (gRPC) and the token endpoint (HTTP) both derive client-secret
    verifiers from one key. It used to be loaded by the HTTP server's start, so the admin API held
    the HTTP server object and answered UNAVAILABLE until HTTP was up; now Core.start loads it."""
    assert len(core.client_secret_key) >= 32
    assert core.client_secret_key == await client_secret_key(core.store, None)  # the stored key, kept
