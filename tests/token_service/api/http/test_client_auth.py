"""token_service/api/http/client_auth.py: RFC 6749 §2.3 client authentication."""

from __future__ import annotations

import base64

import pytest

from token_service import clients
from token_service.api.http.client_auth import authenticate_client, presented_credentials
from token_service.api.http.forms import Form
from token_service.clients import AuthMethod, OAuthClient
from token_service.errors import InvalidClient, InvalidRequest

KEY = b"k" * 32


class Clients:
    """A dict-backed ClientStore."""

    def __init__(self, *items: OAuthClient) -> None:
        self.items = {c.client_id: c for c in items}

    async def get_client(self, client_id: str) -> OAuthClient | None:
        return self.items.get(client_id)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture
def registered() -> tuple[Clients, dict[str, str]]:
    basic_client, basic_secret = clients.new_client("basic:app", server_key=KEY)
    post_client, post_secret = clients.new_client("post-app", auth_method="client_secret_post", server_key=KEY)
    public_client, _ = clients.new_client("public-app", auth_method="none", server_key=KEY)
    secrets = {"basic:app": basic_secret or "", "post-app": post_secret or ""}
    return Clients(basic_client, post_client, public_client), secrets


def test_basic_credentials_are_form_urldecoded() -> None:
    """Basic id and secret are form-urldecoded after base64 (RFC 6749 §2.3.1): %3A is ':'."""
    creds = presented_credentials(basic("basic%3Aapp", "a+b%25"), Form({}))
    assert (creds.client_id, creds.secret, creds.method) == ("basic:app", "a b%", AuthMethod.CLIENT_SECRET_BASIC)


def test_body_credentials_are_client_secret_post() -> None:
    """client_id + client_secret in the body is client_secret_post."""
    creds = presented_credentials(None, Form({"client_id": "c", "client_secret": "s"}))
    assert creds.method is AuthMethod.CLIENT_SECRET_POST


def test_client_id_alone_is_method_none() -> None:
    """client_id without a secret identifies a public client (method none)."""
    assert presented_credentials(None, Form({"client_id": "c"})).method is AuthMethod.NONE


def test_two_methods_are_invalid_request() -> None:
    """Basic plus a body secret is refused: one method per request (RFC 6749 §2.3)."""
    with pytest.raises(InvalidRequest):
        presented_credentials(basic("c", "s"), Form({"client_secret": "s"}))


def test_mismatched_client_ids_are_invalid_request() -> None:
    """A body client_id that differs from the Basic one is refused."""
    with pytest.raises(InvalidRequest):
        presented_credentials(basic("c", "s"), Form({"client_id": "d"}))


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer abc"])
def test_malformed_authorization_is_invalid_client(header: str) -> None:
    """Bad base64, no colon, or another scheme in Authorization is invalid_client."""
    with pytest.raises(InvalidClient):
        presented_credentials(header, Form({}))


def test_no_client_at_all_is_invalid_client() -> None:
    """A request without any client identification is invalid_client (fail closed)."""
    with pytest.raises(InvalidClient):
        presented_credentials(None, Form({}))


async def test_right_basic_secret_authenticates(registered: tuple[Clients, dict[str, str]]) -> None:
    """A registered client_secret_basic client with its secret is authenticated."""
    store, secrets = registered
    client = await authenticate_client(basic("basic%3Aapp", secrets["basic:app"]), Form({}), store, KEY)
    assert client.client_id == "basic:app"


async def test_wrong_secret_is_invalid_client(registered: tuple[Clients, dict[str, str]]) -> None:
    """A wrong secret is invalid_client."""
    store, _ = registered
    with pytest.raises(InvalidClient):
        await authenticate_client(basic("basic%3Aapp", "wrong"), Form({}), store, KEY)


async def test_unknown_client_is_invalid_client(registered: tuple[Clients, dict[str, str]]) -> None:
    """An unknown client_id is invalid_client with the same message as a wrong secret."""
    store, _ = registered
    with pytest.raises(InvalidClient, match="client authentication failed"):
        await authenticate_client(basic("nobody", "x"), Form({}), store, KEY)


async def test_wrong_method_is_invalid_client(registered: tuple[Clients, dict[str, str]]) -> None:
    """A client_secret_post client that uses Basic is refused: the registered method is enforced."""
    store, secrets = registered
    with pytest.raises(InvalidClient, match="client_secret_post"):
        await authenticate_client(basic("post-app", secrets["post-app"]), Form({}), store, KEY)


async def test_confidential_client_without_secret_is_invalid_client(
    registered: tuple[Clients, dict[str, str]],
) -> None:
    """A confidential client cannot pose as public by leaving out its secret."""
    store, _ = registered
    with pytest.raises(InvalidClient):
        await authenticate_client(None, Form({"client_id": "post-app"}), store, KEY)


async def test_public_client_with_client_id_only(registered: tuple[Clients, dict[str, str]]) -> None:
    """A public client authenticates with client_id alone."""
    store, _ = registered
    client = await authenticate_client(None, Form({"client_id": "public-app"}), store, KEY)
    assert client.is_public


async def test_public_client_sending_a_secret_is_invalid_client(registered: tuple[Clients, dict[str, str]]) -> None:
    """A public client has no secret, so any secret it sends fails."""
    store, _ = registered
    with pytest.raises(InvalidClient):
        await authenticate_client(None, Form({"client_id": "public-app", "client_secret": "x"}), store, KEY)


JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def test_client_assertion_is_the_service_account_method() -> None:
    """client_assertion_type jwt-bearer + client_assertion: kubernetes_service_account; client_id optional."""
    creds = presented_credentials(None, Form({"client_assertion_type": JWT_BEARER, "client_assertion": "a.b.c"}))
    assert (creds.method, creds.assertion, creds.client_id) == (AuthMethod.KUBERNETES_SERVICE_ACCOUNT, "a.b.c", "")


@pytest.mark.parametrize(
    "params",
    [
        {"client_assertion_type": JWT_BEARER},
        {"client_assertion": "a.b.c"},
        {"client_assertion_type": JWT_BEARER, "client_assertion": "a.b.c", "client_secret": "s", "client_id": "c"},
    ],
)
def test_half_an_assertion_or_two_methods_are_invalid_request(params: dict[str, str]) -> None:
    """RFC 7523 §2.2 parameters go together, and never with a secret."""
    with pytest.raises(InvalidRequest):
        presented_credentials(None, Form(params))


def test_assertion_with_basic_is_invalid_request() -> None:
    """An assertion plus HTTP Basic is two methods."""
    with pytest.raises(InvalidRequest):
        presented_credentials(basic("c", "s"), Form({"client_assertion_type": JWT_BEARER, "client_assertion": "x"}))


async def test_assertions_without_trusted_clusters_are_invalid_client(
    registered: tuple[Clients, dict[str, str]],
) -> None:
    """No NATIVE_IAM_CLUSTER_ISSUERS_FILE: every assertion is refused (closed)."""
    store, _ = registered
    form = Form({"client_assertion_type": JWT_BEARER, "client_assertion": "a.b.c"})
    with pytest.raises(InvalidClient):
        await authenticate_client(None, form, store, KEY)
