"""Hostile requests at the OAuth HTTP endpoints: always an RFC 6749 §5.2 error, never a 5xx.

Extends tests/token_service/api/http/test_error_matrix.py (one test per documented row, and random
small bodies at the token endpoint) with what an attacker sends on purpose: every wrong content
type, broken percent-encoding, parameters repeated under an encoded name, huge forms, chunked
bodies without a length, compressed bodies — at the token, revocation and introspection endpoints.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from tests.token_service.api.http.conftest import PASSWORD, OAuthService, start_oauth_service

RFC_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
}
FORM = "application/x-www-form-urlencoded"
GOOD = f"grant_type=password&username=alice&password={PASSWORD}".encode()

# (name, content-type, body)
BODIES: list[tuple[str, str | None, bytes]] = [
    ("json", "application/json", b'{"grant_type": "password", "username": "alice"}'),
    ("text_plain", "text/plain", GOOD),
    ("no_content_type", None, GOOD),
    (
        "multipart",
        "multipart/form-data; boundary=xx",
        b'--xx\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\npassword\r\n--xx--\r\n',
    ),
    ("xml", "application/xml", b"<grant_type>password</grant_type>"),
    ("latin1_charset", FORM + "; charset=iso-8859-1", b"grant_type=password&username=al\xefce&password=x"),
    ("lone_percent", FORM, b"grant_type=password&username=%&password=x"),
    ("bad_percent_hex", FORM, b"grant_type=password&username=%zz&password=x"),
    ("percent_invalid_utf8", FORM, b"grant_type=password&username=%ff%fe&password=x"),
    ("raw_invalid_utf8", FORM, b"grant_type=password&username=\xff\xfe&password=x"),
    ("overlong_utf8", FORM, b"grant_type=password&username=%c0%af&password=x"),
    ("surrogate_utf8", FORM, b"grant_type=password&username=%ed%a0%80&password=x"),
    ("nul", FORM, b"grant_type=password&username=alice%00admin&password=x"),
    ("only_separators", FORM, b"&&&&==&=&"),
    ("key_without_value", FORM, b"grant_type&username&password"),
    ("semicolon_separator", FORM, b"grant_type=password;username=alice;password=x"),
    ("repeated_grant_type_encoded_name", FORM, GOOD + b"&grant%5Ftype=refresh_token"),
    ("repeated_username", FORM, GOOD + b"&username=bob"),
    ("repeated_password", FORM, GOOD + b"&password=other"),
    ("repeated_scope", FORM, GOOD + b"&scope=a&scope=b"),
    ("repeated_client_id", FORM, GOOD + b"&client_id=web&client_id=spa"),
    ("repeated_empty_and_full", FORM, b"grant_type=&grant_type=password&username=alice&password=x"),
    ("plus_and_space", FORM, b"grant+type=password&username=alice&password=x"),
    ("unicode_grant_type", FORM, "grant_type=pässword&username=alice&password=x".encode()),
    ("huge_key", FORM, b"k" * 15000 + b"=1"),
    ("huge_password", FORM, b"grant_type=password&username=alice&password=" + b"p" * 15000),
    ("huge_scope", FORM, GOOD + b"&scope=" + b"a%20" * 3000),
    ("many_params", FORM, b"&".join(b"p%d=1" % i for i in range(3000))),
    ("over_body_limit", FORM, GOOD + b"&x=" + b"y" * (64 * 1024)),
    ("one_megabyte", FORM, b"a=" + b"b" * (1 << 20)),
]


# One server for all cases (each start costs ~0.3 s); no case reaches a grant, so none can lock alice out.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def oauth_service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OAuthService]:
    service = await start_oauth_service(f"sqlite:///{tmp_path_factory.mktemp('hostile-http')}/oauth.db")
    yield service
    await service.app.stop(0)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(oauth_service: OAuthService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=oauth_service.url, timeout=30) as http:
        yield http


def _assert_rfc_error(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:200])
    assert response.status_code in (400, 401, 413, 415), response.status_code
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    assert response.json()["error"] in RFC_ERRORS, response.text[:200]
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("name", "content_type", "body"), BODIES, ids=[b[0] for b in BODIES])
async def test_hostile_body_at_token_endpoint_gets_an_rfc6749_error(
    client: httpx.AsyncClient, oauth_service: OAuthService, name: str, content_type: str | None, body: bytes
) -> None:
    """A hostile body (wrong type, broken encoding, repeated or huge parameters) is a 4xx RFC 6749 error."""
    headers = oauth_service.basic("web")
    if content_type is not None:
        headers["Content-Type"] = content_type
    _assert_rfc_error(await client.post("/oauth2/token", content=body, headers=headers))


# Revocation and introspection read their forms the same way: a cross-section of the cases.
OTHER_ENDPOINT_CASES = {"json", "no_content_type", "multipart", "percent_invalid_utf8", "nul", "repeated_client_id"}
OTHER_BODIES = [b for b in BODIES if b[0] in OTHER_ENDPOINT_CASES | {"over_body_limit", "many_params"}]


@pytest.mark.parametrize("endpoint", ["/oauth2/revoke", "/oauth2/introspect"])
@pytest.mark.parametrize(
    ("name", "content_type", "body"),
    OTHER_BODIES,
    ids=[b[0] for b in OTHER_BODIES],
)
async def test_hostile_body_at_revoke_and_introspect_gets_an_rfc6749_error(
    client: httpx.AsyncClient,
    oauth_service: OAuthService,
    endpoint: str,
    name: str,
    content_type: str | None,
    body: bytes,
) -> None:
    """RFC 7009 and RFC 7662 endpoints answer hostile bodies with the same RFC 6749 errors."""
    headers = oauth_service.basic("web")
    if content_type is not None:
        headers["Content-Type"] = content_type
    _assert_rfc_error(await client.post(endpoint, content=body, headers=headers))


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    yield b"grant_type=password&username=alice&password="
    for _ in range(total // size):
        yield b"x" * size


async def test_chunked_body_without_length_over_the_limit(
    client: httpx.AsyncClient, oauth_service: OAuthService
) -> None:
    """A chunked body (no Content-Length) that grows past the limit is refused 413, not buffered."""

    async def stream() -> AsyncIterator[bytes]:
        for chunk in _chunks(2 << 20):
            yield chunk

    headers = {**oauth_service.basic("web"), "Content-Type": FORM}
    response = await client.post("/oauth2/token", content=stream(), headers=headers)
    _assert_rfc_error(response)
    assert response.status_code == 413


async def test_compressed_body_is_not_inflated(client: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """A gzip Content-Encoding body (a decompression bomb vector) is not a form: RFC error, no 5xx."""
    import gzip

    headers = {**oauth_service.basic("web"), "Content-Type": FORM, "Content-Encoding": "gzip"}
    body = gzip.compress(GOOD + b"&x=" + b"0" * (4 << 20))
    _assert_rfc_error(await client.post("/oauth2/token", content=body, headers=headers))


async def test_control_good_form_is_accepted(client: httpx.AsyncClient, oauth_service: OAuthService) -> None:
    """The same client and endpoint accept the well-formed body the cases above corrupt."""
    headers = {**oauth_service.basic("web"), "Content-Type": FORM}
    response = await client.post("/oauth2/token", content=GOOD, headers=headers)
    assert response.status_code == 200, response.text
