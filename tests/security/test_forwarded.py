"""Per-address throttling on the HTTP endpoints (docs/token-service.md's promise): one address guessing across
many identities is locked out, whatever X-Forwarded-For it sends, unless its peer is a configured
trusted proxy, whose X-Forwarded-For then names the client."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from tests.token_service.api.http.conftest import PASSWORD, OAuthService, start_oauth_service
from token_service.forwarded import client_address

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("198.51.100.9", ["203.0.113.1"], "198.51.100.9"),  # untrusted peer: header ignored
        ("10.0.0.2", [], "10.0.0.2"),  # a proxy that says nothing is the client
        ("10.0.0.2", ["203.0.113.1"], "203.0.113.1"),
        ("10.0.0.2", ["6.6.6.6, 203.0.113.1, 10.0.0.3"], "203.0.113.1"),  # client-written hops ignored
        ("10.0.0.2", ["6.6.6.6", "203.0.113.1"], "203.0.113.1"),  # several headers, in order
        ("10.0.0.2", ["203.0.113.1, not-an-ip, 10.0.0.3"], "10.0.0.3"),  # garbage: last trusted hop
        ("10.0.0.2", ["10.0.0.4, 10.0.0.3"], "10.0.0.4"),
        ("fd00::1", ["2001:db8::1"], "2001:db8::1"),
        ("::ffff:198.51.100.9", ["203.0.113.1"], "198.51.100.9"),  # IPv4-mapped: one counter
        ("10.0.0.2", [" ::FFFF:203.0.113.1 "], "203.0.113.1"),
        (None, ["203.0.113.1"], None),
    ],
)
def test_client_address(peer: str | None, headers: list[str], expected: str | None) -> None:
    assert client_address(peer, headers, PROXIES) == expected


async def _login(service: OAuthService, username: str, password: str, forwarded_for: str | None) -> httpx.Response:
    headers = service.basic("web")
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    data = {"grant_type": "password", "username": username, "password": password}
    async with httpx.AsyncClient(base_url=service.url) as http:
        return await http.post("/oauth2/token", data=data, headers=headers)


@pytest.mark.parametrize("spoof", [False, True], ids=["plain", "spoofed-xff"])
async def test_one_address_guessing_many_identities_is_locked_out(db_url: str, spoof: bool) -> None:
    """30 failed logins for 30 usernames from one address (with default settings), then alice's
    right password from it: refused like any locked attempt. A new X-Forwarded-For per request
    from an untrusted peer changes nothing."""
    service = await start_oauth_service(db_url)
    try:
        for i in range(30):
            forwarded = f"203.0.113.{i}" if spoof else None
            refused = await _login(service, f"user-{i}", "guess", forwarded)
            assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        locked = await _login(service, "alice", PASSWORD, "198.51.100.77" if spoof else None)
        assert locked.status_code == 400 and locked.json()["error"] == "invalid_grant", locked.status_code
    finally:
        await service.app.stop(0)


async def test_trusted_proxy_attributes_each_client_its_own_counter(sqlite_url: str) -> None:
    """Behind a trusted proxy (127.0.0.1 here) the client in X-Forwarded-For is locked out and
    another client of the same proxy is not; what the client wrote left of it does not count."""
    service = await start_oauth_service(
        sqlite_url, lockout_address_free_attempts=5, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),)
    )
    try:
        for i in range(6):
            await _login(service, f"user-{i}", "guess", f"6.6.6.{i}, 203.0.113.5")
        assert (await _login(service, "alice", PASSWORD, "203.0.113.5")).status_code == 400
        assert (await _login(service, "alice", PASSWORD, "203.0.113.6")).status_code == 200
    finally:
        await service.app.stop(0)


async def test_failed_client_authentication_counts_against_the_address(sqlite_url: str) -> None:
    """Guessing client secrets (or client ids) from an address spends its attempts: after
    NATIVE_IAM_LOCKOUT_ADDRESS_FREE_ATTEMPTS failures even a right password from it is refused."""
    service = await start_oauth_service(sqlite_url, lockout_address_free_attempts=3)
    try:
        async with httpx.AsyncClient(base_url=service.url) as http:
            for guess in ("web:guess-1", "web:guess-2", "nobody:x"):
                client_id, _, secret = guess.partition(":")
                refused = await http.post("/oauth2/introspect", data={"token": "x"}, auth=(client_id, secret))
                assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        locked = await _login(service, "alice", PASSWORD, None)
        assert locked.status_code == 400 and locked.json()["error"] == "invalid_grant", locked.status_code
    finally:
        await service.app.stop(0)
