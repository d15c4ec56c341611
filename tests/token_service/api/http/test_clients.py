"""token_service/clients.py: the client model and keyed secret hashes."""

from __future__ import annotations

import pytest

from token_service import clients
from token_service.clients import AuthMethod, ClientError, GrantType

KEY = b"k" * 32


def test_secret_hash_is_hmac_not_the_secret() -> None:
    """A secret is stored as a tagged HMAC-SHA-256 hex digest that does not contain it."""
    stored = clients.hash_secret(KEY, "s3cret")
    assert stored.startswith("hmac-sha256$")
    assert len(stored.split("$", 1)[1]) == 64
    assert "s3cret" not in stored


def test_verify_secret_accepts_the_right_secret() -> None:
    """The right secret verifies."""
    assert clients.verify_secret(KEY, "s3cret", clients.hash_secret(KEY, "s3cret"))


def test_verify_secret_refuses_wrong_secret_and_wrong_key() -> None:
    """A wrong secret, or the right secret under another server key, does not verify."""
    stored = clients.hash_secret(KEY, "s3cret")
    assert not clients.verify_secret(KEY, "s3creT", stored)
    assert not clients.verify_secret(b"x" * 32, "s3cret", stored)


def test_verify_secret_without_stored_hash_is_false() -> None:
    """No stored hash (public or unknown client) never verifies, whatever the secret."""
    assert not clients.verify_secret(KEY, "", None)
    assert not clients.verify_secret(KEY, "0" * 64, None)


def test_public_client_rotates_by_default_and_has_no_secret() -> None:
    """A public client gets no secret and refresh rotation on (RFC 9700 §2.2.2)."""
    client, secret = clients.new_client("spa", auth_method="none", server_key=KEY)
    assert secret is None and client.secret_hash is None
    assert client.is_public and client.rotate_refresh_tokens


def test_confidential_client_gets_high_entropy_secret_and_no_rotation() -> None:
    """A confidential client gets a ≥256-bit secret (stored hashed) and rotation off by default."""
    client, secret = clients.new_client("backend", server_key=KEY)
    assert secret is not None and len(secret) >= 43
    assert clients.verify_secret(KEY, secret, client.secret_hash)
    assert client.auth_method is AuthMethod.CLIENT_SECRET_BASIC
    assert not client.rotate_refresh_tokens


def test_grants_are_configurable() -> None:
    """A client may be limited to the password grant ("allow refresh token" off)."""
    client, _ = clients.new_client("pw-only", server_key=KEY, grant_types=["password"])
    assert client.allows(GrantType.PASSWORD) and not client.allows(GrantType.REFRESH_TOKEN)


@pytest.mark.parametrize("client_id", ["", "has space", "é", "x" * 256])
def test_invalid_client_id_is_refused(client_id: str) -> None:
    """client_id must be 1..255 visible ASCII characters (RFC 6749 Appendix A.1)."""
    with pytest.raises(ClientError):
        clients.new_client(client_id, server_key=KEY)


def test_unknown_grant_or_method_is_refused() -> None:
    """Unknown grant types and auth methods are configuration errors, not silently ignored."""
    with pytest.raises(ClientError):
        clients.new_client("c", server_key=KEY, grant_types=["implicit"])
    with pytest.raises(ClientError):
        clients.new_client("c", server_key=KEY, auth_method="private_key_jwt")


def test_service_account_client_has_no_secret_and_is_confidential() -> None:
    """kubernetes_service_account: no secret to hold (its cluster's token proves it), not public."""
    client, secret = clients.new_client("checkout", auth_method="kubernetes_service_account", server_key=KEY)
    assert secret is None and client.secret_hash is None and not client.is_public
    assert client.auth_method is AuthMethod.KUBERNETES_SERVICE_ACCOUNT


def test_exchange_audiences_need_the_grant_and_a_confidential_client() -> None:
    """Exchange audiences without the token-exchange grant, or a public exchanging client, are refused."""
    exchange = GrantType.TOKEN_EXCHANGE
    client, _ = clients.new_client("x", server_key=KEY, grant_types=[exchange], exchange_audiences=["orders", "orders"])
    assert client.exchange_audiences == ("orders",) and client.allows(exchange)
    with pytest.raises(ClientError, match="token-exchange grant"):
        clients.new_client("x", server_key=KEY, exchange_audiences=["orders"])
    with pytest.raises(ClientError, match="public client"):
        clients.new_client("x", server_key=KEY, auth_method="none", grant_types=[exchange])
