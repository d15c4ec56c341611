"""Hostile headers through a real Envoy (examples/envoy/envoy.yaml) and the sidecar process.

What only shows end to end: Envoy merges duplicate Authorization headers before the sidecar sees
them, enforces its own header-size limit, and forwards raw bytes that are not UTF-8. None of it
may reach the workload. Reuses tests/sidecar/test_envoy.py's gateway (Envoy + ``native-iam
sidecar`` + the in-test Feed server).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.sidecar._feed import Issuer
from tests.sidecar.test_envoy import envoy_bin, gateway, module_feed

pytestmark = pytest.mark.envoy
__all__ = ["envoy_bin", "gateway", "module_feed"]


@pytest.fixture
def client(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, timeout=10) as http:
        yield http


def _get(client: httpx.Client, headers: list[tuple[str, str | bytes]]) -> httpx.Response:
    return client.get("/orders/1", headers=headers)


def test_control_valid_token_reaches_the_workload(client: httpx.Client, issuer: Issuer) -> None:
    """The token the cases below combine is itself allowed through Envoy."""
    assert _get(client, [("authorization", f"Bearer {issuer.mint()}")]).status_code == 200


@pytest.mark.parametrize("order", ["valid_valid", "valid_garbage", "garbage_valid", "garbage_garbage"], ids=lambda o: o)
def test_duplicate_authorization_headers_never_pass(client: httpx.Client, issuer: Issuer, order: str) -> None:
    """Two Authorization headers, in any order of valid and garbage tokens, are a 400
    invalid_request "expected 'Bearer <token>'" (Envoy joins them with a comma into one value that
    is not ``Bearer <token>``), even when both carry valid tokens: the sidecar never picks one."""
    # (A valid header plus an empty one is just the valid token: Envoy drops the empty value.)
    values = {"valid": f"Bearer {issuer.mint()}", "garbage": "Bearer a.b.c"}
    first, second = order.split("_")
    response = _get(client, [("authorization", values[first]), ("authorization", values[second])])
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.json() == {"error": "invalid_request", "error_description": "expected 'Bearer <token>'"}
    assert "x-native-iam-identity" not in response.text


def test_token_over_the_sidecar_limit_is_400(client: httpx.Client, issuer: Issuer) -> None:
    """A validly signed token larger than NATIVE_IAM_MAX_TOKEN_BYTES (8192) is refused as a malformed request."""
    response = _get(client, [("authorization", f"Bearer {issuer.mint(pad='x' * 9000)}")])
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_header_over_envoys_limit_is_refused_by_envoy(client: httpx.Client) -> None:
    """A 100 KiB Authorization header never reaches the sidecar or the workload (Envoy: 431)."""
    response = _get(client, [("authorization", "Bearer " + "A" * 100_000)])
    assert response.status_code in (400, 431), response.status_code


@pytest.mark.parametrize(
    "raw",
    [
        b"Bearer \xc3\xa9t\xc3\xa9",
        b"Bearer \xff\xfe\xfd",
        b"Bearer abc\x80def",
        b"Bearer " + bytes(range(0x80, 0xA0)),
    ],
    ids=["utf8_non_ascii", "invalid_utf8", "lone_continuation", "c1_controls"],
)
def test_non_ascii_and_invalid_utf8_header_never_pass(client: httpx.Client, issuer: Issuer, raw: bytes) -> None:
    """Non-ASCII and invalid UTF-8 bytes in Authorization are refused (4xx, or Envoy's fail-closed
    403 when the bytes cannot even travel in a CheckRequest) — never allowed, never a 5xx from the sidecar."""
    response = _get(client, [("authorization", raw)])
    assert response.status_code in (400, 401, 403), response.status_code


def test_valid_token_followed_by_invalid_utf8_never_passes(client: httpx.Client, issuer: Issuer) -> None:
    """A valid token with non-UTF-8 bytes appended is not the valid token."""
    raw = f"Bearer {issuer.mint()}".encode() + b"\xff"
    assert _get(client, [("authorization", raw)]).status_code in (400, 401, 403)
