"""Kubernetes service-account tokens as client assertions (RFC 7523 §2.2): token_service/federation.

A stand-in cluster issuer (tests/k8s_issuer.py) serves its OIDC discovery document and JWKS on
127.0.0.1 and mints tokens shaped as kube-apiserver mints projected service-account tokens; the
token service fetches its keys like it would a cluster's. Client authentication is exercised on
/oauth2/introspect (it answers 200 once the client is authenticated, whatever the token); every
refusal is 401 invalid_client with a precise reason in native_iam_client_assertions_total.
"""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import pytest

from tests.k8s_issuer import KubernetesIssuer, new_key
from tests.token_service.api.http.conftest import JWT_BEARER, Federated, introspect_as


@pytest.fixture
async def http(federated_sqlite: Federated) -> httpx.AsyncClient:  # type: ignore[misc]
    async with httpx.AsyncClient(base_url=federated_sqlite.service.url) as client:
        yield client


async def refused(http: httpx.AsyncClient, fed: Federated, assertion: str, reason: str, **extra: str) -> None:
    """The assertion is refused as invalid_client (401, Basic challenge) and counted under ``reason``."""
    before = fed.assertion_outcomes(reason)
    response = await introspect_as(http, assertion, **extra)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert fed.assertion_outcomes(reason) == before + 1, f"not counted as {reason}"


async def test_projected_token_authenticates_its_mapped_client(
    federated_sqlite: Federated, http: httpx.AsyncClient
) -> None:
    """A valid projected token of shop/checkout authenticates client "checkout" (counted ok)."""
    response = await introspect_as(http, federated_sqlite.assertion())
    assert response.status_code == 200 and response.json() == {"active": False}
    assert federated_sqlite.assertion_outcomes("ok") == 1


async def test_client_id_may_accompany_the_assertion_if_it_is_the_mapped_client(
    federated_sqlite: Federated, http: httpx.AsyncClient
) -> None:
    """client_id equal to the mapped client is accepted; another one is client_mismatch."""
    ok = await introspect_as(http, federated_sqlite.assertion(), client_id="checkout")
    assert ok.status_code == 200
    await refused(http, federated_sqlite, federated_sqlite.assertion(), "client_mismatch", client_id="shop-workloads")


async def test_namespace_pattern_maps_any_service_account_of_the_namespace(
    federated_sqlite: Federated, http: httpx.AsyncClient
) -> None:
    """system:serviceaccount:shop:* maps shop/cart to shop-workloads; the exact mapping wins for checkout."""
    ok = await introspect_as(http, federated_sqlite.assertion("shop", "cart"), client_id="shop-workloads")
    assert ok.status_code == 200
    exact = await introspect_as(http, federated_sqlite.assertion("shop", "checkout"), client_id="shop-workloads")
    assert exact.status_code == 401  # checkout maps to "checkout": the exact subject takes precedence


async def test_wrong_audience(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """A token minted for another audience (the API server's) is refused."""
    token = federated_sqlite.assertion(audience="https://kubernetes.default.svc")
    await refused(http, federated_sqlite, token, "audience")


async def test_expired(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """exp more than the skew (5 s) in the past is refused."""
    token = federated_sqlite.assertion(now=time.time() - 3600, lifetime_s=600)
    await refused(http, federated_sqlite, token, "expired")


async def test_not_yet_valid(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """nbf more than the skew in the future is refused."""
    token = federated_sqlite.assertion(nbf=int(time.time()) + 120)
    await refused(http, federated_sqlite, token, "not_yet_valid")


async def test_issued_in_the_future(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """iat beyond the skew in the future is refused (a clock gone wrong, or a forged lifetime)."""
    token = federated_sqlite.assertion(iat=int(time.time()) + 120, nbf=int(time.time()))
    await refused(http, federated_sqlite, token, "issued_in_future")


async def test_lifetime_beyond_the_maximum(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """exp - iat above max_lifetime_s (7200 here) is refused: a year-long legacy-style token."""
    token = federated_sqlite.assertion(lifetime_s=365 * 24 * 3600)
    await refused(http, federated_sqlite, token, "lifetime")


async def test_untrusted_issuer(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """A token of another cluster (iss not in the trust file) is refused, even well signed."""
    with KubernetesIssuer() as other:
        token = other.token("shop", "checkout", audience="https://token-service.test")
    await refused(http, federated_sqlite, token, "untrusted_issuer")


async def test_unknown_service_account(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """A service account the trust file does not map (namespace billing, name other) is refused."""
    await refused(http, federated_sqlite, federated_sqlite.assertion("billing", "other"), "unknown_service_account")


async def test_namespace_not_allowed(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """The shop:* pattern does not cover namespace "shopping" (nor a prefix of it)."""
    await refused(http, federated_sqlite, federated_sqlite.assertion("shopping", "cart"), "unknown_service_account")


async def test_key_not_in_the_cluster_jwks(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """Signed by a key the cluster does not publish: refused after one refetch of the JWKS."""
    token = federated_sqlite.assertion(key=new_key())
    await refused(http, federated_sqlite, token, "unknown_kid")


async def test_forged_signature_under_the_cluster_kid(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """Another key claiming the cluster key's kid: the signature does not verify."""
    cluster_kid = federated_sqlite.cluster.signing_key.kid
    token = federated_sqlite.assertion(key=new_key(), kid=cluster_kid)
    await refused(http, federated_sqlite, token, "signature")


@pytest.mark.parametrize("alg", ["none", "HS256"])
async def test_alg_none_and_hs256_are_refused(alg: str, federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """alg none, and HS256 keyed with the cluster's public key (algorithm confusion), are refused."""
    now = int(time.time())
    claims = jwt.decode(federated_sqlite.assertion(now=now), options={"verify_signature": False})
    kid = federated_sqlite.cluster.signing_key.kid
    if alg == "none":
        token = jwt.encode(claims, None, algorithm="none", headers={"kid": kid})
    else:
        token = jwt.api_jws.PyJWS(algorithms=["HS256"]).encode(
            jwt.utils.force_bytes(jwt.api_jwt.json.dumps(claims)), b"k" * 32, algorithm="HS256", headers={"kid": kid}
        )
    await refused(http, federated_sqlite, token, "algorithm")


async def test_kubernetes_claims_must_agree_with_the_subject(
    federated_sqlite: Federated, http: httpx.AsyncClient
) -> None:
    """kubernetes.io.namespace differing from sub's namespace, or no kubernetes.io claim: refused."""
    claims = {"namespace": "billing", "serviceaccount": {"name": "checkout", "uid": str(uuid.uuid4())}}
    await refused(http, federated_sqlite, federated_sqlite.assertion(kubernetes_io=claims), "kubernetes_claims")
    await refused(http, federated_sqlite, federated_sqlite.assertion(kubernetes_io=None), "kubernetes_claims")
    await refused(http, federated_sqlite, federated_sqlite.assertion(sub="checkout"), "kubernetes_claims")


async def test_single_use_issuer_requires_a_jti(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """A single-use issuer's token without jti cannot be checked for replay: refused."""
    await refused(http, federated_sqlite, federated_sqlite.assertion(jti=None), "kubernetes_claims")


async def test_mapped_client_must_be_registered_for_service_accounts(
    federated_sqlite: Federated, http: httpx.AsyncClient
) -> None:
    """billing/invoicer maps to "web", a client_secret_basic client: the mapping does not authenticate it."""
    await refused(http, federated_sqlite, federated_sqlite.assertion("billing", "invoicer"), "not_registered")


async def test_rotated_cluster_key_is_fetched_on_first_use(
    federated_sqlite: Federated, http: httpx.AsyncClient
) -> None:
    """The cluster rotates its key: the first token with the new kid refetches the JWKS and passes."""
    assert (await introspect_as(http, federated_sqlite.assertion())).status_code == 200
    fetches = federated_sqlite.cluster.hits["/openid/v1/jwks"]
    federated_sqlite.cluster.rotate(keep_old=False)
    assert (await introspect_as(http, federated_sqlite.assertion())).status_code == 200
    assert federated_sqlite.cluster.hits["/openid/v1/jwks"] == fetches + 1


async def test_assertion_and_basic_together_are_invalid_request(
    federated_sqlite: Federated, http: httpx.AsyncClient
) -> None:
    """Two client authentication methods in one request are refused (RFC 6749 §2.3)."""
    response = await http.post(
        "/oauth2/introspect",
        data={"token": "x", "client_assertion_type": JWT_BEARER, "client_assertion": federated_sqlite.assertion()},
        headers=federated_sqlite.service.basic("web"),
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_other_assertion_type_is_invalid_client(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """Only the jwt-bearer client assertion type is understood."""
    response = await http.post(
        "/oauth2/introspect",
        data={"token": "x", "client_assertion_type": "urn:example:saml", "client_assertion": "abc"},
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


async def test_garbage_assertion_is_malformed(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """Not a JWT at all: invalid_client, never a 500."""
    await refused(http, federated_sqlite, "not-a-jwt", "malformed")
    await refused(http, federated_sqlite, "a.b.c", "malformed")


async def test_replayed_single_use_assertion(federated: Federated) -> None:
    """The same single-use assertion twice: the second is refused as replayed (SQLite and PostgreSQL)."""
    assertion = federated.assertion()
    async with httpx.AsyncClient(base_url=federated.service.url) as http:
        assert (await introspect_as(http, assertion)).status_code == 200
        await refused(http, federated, assertion, "replayed")


async def test_metadata_lists_the_method_and_the_grant(federated_sqlite: Federated, http: httpx.AsyncClient) -> None:
    """RFC 8414: kubernetes_service_account is an auth method of every endpoint; token exchange a grant."""
    doc = (await http.get("/.well-known/oauth-authorization-server")).json()
    for key in ("token", "revocation", "introspection"):
        assert "kubernetes_service_account" in doc[f"{key}_endpoint_auth_methods_supported"]
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in doc["grant_types_supported"]


async def test_refusal_is_logged_with_its_reason_and_no_token(
    federated_sqlite: Federated, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """One log line names the reason and the issuer; the assertion itself is never logged."""
    token = federated_sqlite.assertion(audience="https://elsewhere.example")
    with caplog.at_level("INFO", logger="token_service.federation.assertion"):
        assert (await introspect_as(http, token)).status_code == 401
    records = [r for r in caplog.records if r.getMessage() == "client assertion refused"]
    assert len(records) == 1 and records[0].reason == "audience"  # type: ignore[attr-defined]
    assert records[0].issuer == federated_sqlite.cluster.issuer  # type: ignore[attr-defined]
    assert token not in caplog.text and token.split(".")[1] not in caplog.text
