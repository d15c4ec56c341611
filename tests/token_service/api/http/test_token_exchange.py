"""Token exchange (RFC 8693) on /oauth2/token: token_service/grants/token_exchange.py.

The exchanging client authenticates with a secret ("exchanger") or with its Kubernetes
service-account token ("checkout", tests/k8s_issuer.py); the subject token is alice's access token
from a password grant. Every test runs on SQLite and PostgreSQL (exchanged tokens are stored).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from tests.token_service.api.http.conftest import (
    ACCESS_TOKEN_TYPE,
    JWT_BEARER,
    TOKEN_EXCHANGE,
    Federated,
    password_grant,
    token_request,
)
from token_service.access import verify_access_token
from token_service.admin import service as admin
from token_service.errors import TokenDisabled
from token_service.store import tokens as stored_tokens

REFRESH_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:refresh_token"


@pytest.fixture
async def http(federated: Federated) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=federated.service.url) as client:
        yield client


async def alice_token(
    http: httpx.AsyncClient, fed: Federated, scope: str = "orders:read orders:write"
) -> dict[str, Any]:
    response = await password_grant(http, fed.service, "web", scope=scope)
    assert response.status_code == 200, response.text
    return response.json()


async def exchange(
    http: httpx.AsyncClient, fed: Federated, subject_token: str, *, client: str = "exchanger", **params: str
) -> httpx.Response:
    """A token exchange as ``client`` (its secret), or as "checkout" with its service-account token."""
    data = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        **params,
    }
    if client == "checkout":
        data |= {"client_assertion_type": JWT_BEARER, "client_assertion": fed.assertion()}
        return await http.post("/oauth2/token", data=data)
    return await token_request(http, fed.service, client, data)


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def assert_error(response: httpx.Response, error: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error, response.text


async def test_exchange_with_client_secret(federated: Federated, http: httpx.AsyncClient) -> None:
    """The issued token: alice's sub, the exchanger's client_id, act, the target audience, no refresh token."""
    subject = await alice_token(http, federated)
    response = await exchange(http, federated, subject["access_token"], audience="orders")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE and body["token_type"] == "Bearer"
    assert "refresh_token" not in body and "id_token" not in body
    assert body["scope"] == "orders:read orders:write"
    issued, original = claims_of(body["access_token"]), claims_of(subject["access_token"])
    assert issued["sub"] == "alice" and issued["client_id"] == "exchanger"
    assert issued["act"] == {"sub": "exchanger"} and issued["aud"] == "orders"
    assert issued["exp"] <= original["exp"] and issued["jti"] != original["jti"]
    # Stored like any access token: CheckAccess knows it.
    checked = await verify_access_token(federated.service.core, body["access_token"])
    assert checked.client_id == "exchanger"


async def test_exchange_authenticated_by_service_account(federated: Federated, http: httpx.AsyncClient) -> None:
    """A workload authenticates with its projected service-account token alone and exchanges."""
    subject = await alice_token(http, federated, "orders:read")
    response = await exchange(http, federated, subject["access_token"], client="checkout", resource="payments")
    assert response.status_code == 200, response.text
    issued = claims_of(response.json()["access_token"])
    assert issued["client_id"] == "checkout" and issued["act"] == {"sub": "checkout"}
    assert issued["aud"] == "payments" and issued["scope"] == "orders:read"


async def test_lifetime_never_exceeds_the_subject_token(federated: Federated, http: httpx.AsyncClient) -> None:
    """A subject token with 60 s left gives an exchanged token expiring no later."""
    await federated.service.register("short", access_token_ttl_s=60)
    subject = await password_grant(http, federated.service, "short", scope="orders:read")
    response = await exchange(http, federated, subject.json()["access_token"])
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] <= 60
    assert claims_of(response.json()["access_token"])["exp"] <= claims_of(subject.json()["access_token"])["exp"]


async def test_narrower_scope_is_granted(federated: Federated, http: httpx.AsyncClient) -> None:
    """scope may name fewer scopes than the subject token's."""
    subject = await alice_token(http, federated)
    response = await exchange(http, federated, subject["access_token"], scope="orders:read")
    assert response.status_code == 200 and response.json()["scope"] == "orders:read"


async def test_widening_scopes_is_invalid_scope(federated: Federated, http: httpx.AsyncClient) -> None:
    """A scope the subject token does not carry (even one alice's policy grants) is refused."""
    subject = await alice_token(http, federated, "orders:read")
    assert_error(
        await exchange(http, federated, subject["access_token"], scope="orders:read orders:write"), "invalid_scope"
    )


async def test_audience_not_allowed_is_invalid_target(federated: Federated, http: httpx.AsyncClient) -> None:
    """An audience outside the client's exchange audiences is invalid_target (RFC 8693 §2.2.2)."""
    subject = await alice_token(http, federated)
    assert_error(await exchange(http, federated, subject["access_token"], audience="payments"), "invalid_target")
    assert_error(
        await exchange(http, federated, subject["access_token"], resource="https://evil.example"), "invalid_target"
    )


async def test_revoked_subject_token_is_invalid_grant(federated: Federated, http: httpx.AsyncClient) -> None:
    """A subject token revoked (RFC 7009) by its client cannot be exchanged."""
    subject = await alice_token(http, federated)
    revoked = await http.post(
        "/oauth2/revoke", data={"token": subject["access_token"]}, headers=federated.service.basic("web")
    )
    assert revoked.status_code == 200
    assert_error(await exchange(http, federated, subject["access_token"]), "invalid_grant")


async def test_subject_token_of_another_issuer_is_invalid_grant(federated: Federated, http: httpx.AsyncClient) -> None:
    """Signed with this service's own key but naming another issuer; and a foreign cluster token: refused."""
    subject = claims_of((await alice_token(http, federated))["access_token"])
    key = federated.service.core.keys.signing_key()
    forged = jwt.encode(
        {**subject, "iss": "https://other-token-service.example"},
        key.private,
        algorithm=key.alg,
        headers={"kid": key.kid, "typ": "at+jwt"},
    )
    assert_error(await exchange(http, federated, forged), "invalid_grant")
    assert_error(await exchange(http, federated, federated.assertion()), "invalid_grant")


async def test_refresh_token_as_subject_token_is_invalid_grant(federated: Federated, http: httpx.AsyncClient) -> None:
    """A refresh token passed off as an access token is refused; named as one, invalid_request."""
    refresh_token = (await alice_token(http, federated))["refresh_token"]
    assert_error(await exchange(http, federated, refresh_token), "invalid_grant")
    named = await exchange(http, federated, refresh_token, subject_token_type=REFRESH_TOKEN_TYPE)
    assert_error(named, "invalid_request")


async def test_missing_and_unsupported_parameters_are_invalid_request(
    federated: Federated, http: httpx.AsyncClient
) -> None:
    """No subject_token; an actor_token; a requested_token_type other than access_token."""
    token = (await alice_token(http, federated))["access_token"]
    missing = await token_request(http, federated.service, "exchanger", {"grant_type": TOKEN_EXCHANGE})
    assert_error(missing, "invalid_request")
    assert_error(await exchange(http, federated, token, actor_token=token), "invalid_request")
    assert_error(await exchange(http, federated, token, requested_token_type=REFRESH_TOKEN_TYPE), "invalid_request")


async def test_client_without_the_grant_is_unauthorized_client(federated: Federated, http: httpx.AsyncClient) -> None:
    """ "web" may not use token exchange."""
    token = (await alice_token(http, federated))["access_token"]
    response = await exchange(http, federated, token, client="web")
    assert_error(response, "unauthorized_client")


async def test_exchanging_an_exchanged_token_nests_act(federated: Federated, http: httpx.AsyncClient) -> None:
    """checkout exchanges the token exchanger got: act = {sub: checkout, act: {sub: exchanger}}."""
    token = (await alice_token(http, federated))["access_token"]
    first = (await exchange(http, federated, token)).json()["access_token"]
    second = await exchange(http, federated, first, client="checkout", audience="orders")
    assert second.status_code == 200, second.text
    assert claims_of(second.json()["access_token"])["act"] == {"sub": "checkout", "act": {"sub": "exchanger"}}


async def test_disabling_the_user_kills_exchanged_tokens(federated: Federated, http: httpx.AsyncClient) -> None:
    """The identity cut-off (sub + namespace + iat) covers exchanged tokens at the token service."""
    token = (await alice_token(http, federated))["access_token"]
    exchanged = (await exchange(http, federated, token)).json()["access_token"]
    core = federated.service.core
    await verify_access_token(core, exchanged)
    await admin.set_identity_active(core, "", "alice", False)
    with pytest.raises(TokenDisabled):
        await verify_access_token(core, exchanged)
    assert_error(await exchange(http, federated, token), "invalid_grant")


async def test_exchanged_token_is_listed_with_its_subject(federated: Federated, http: httpx.AsyncClient) -> None:
    """The exchanged token is in the tokens table: alice's, client exchanger, parent_jti = the subject's jti."""
    token = (await alice_token(http, federated))["access_token"]
    exchanged = (await exchange(http, federated, token)).json()["access_token"]
    core = federated.service.core
    listed, _ = await admin.list_tokens(core, namespace="", identity="alice")
    assert any(t.jti == claims_of(exchanged)["jti"] and t.client_id == "exchanger" for t in listed)
    row = await core.store.run_read(stored_tokens.record, claims_of(exchanged)["jti"])
    assert row is not None and row.parent_jti == claims_of(token)["jti"] and row.usage == "access_token"
