"""token_service/federation: the trust file's rules and the cluster key cache (no HTTP server needed
except the stand-in issuer for discovery)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from native_iam.runtime.env import EnvError
from tests.k8s_issuer import KubernetesIssuer
from token_service.errors import InvalidClientAssertion
from token_service.federation import ClientAssertions, Trust
from token_service.federation.jwks import IssuerKeys, KeysUnavailable, parse_jwks
from token_service.federation.trust import ClusterIssuer, load_trust, parse_trust
from token_service.settings import Settings

ISS = "https://cluster.example"


def trust(**entry: Any) -> str:
    return json.dumps({"issuers": [{"issuer": ISS, "service_accounts": {"system:serviceaccount:a:b": "c"}, **entry}]})


def test_defaults_discovery_at_the_issuer_and_audience_from_the_service() -> None:
    """No key source: OIDC discovery at the issuer; the audience defaults to NATIVE_IAM_ISSUER."""
    issuer = parse_trust(trust(), "https://ts.example").issuers[ISS]
    assert issuer.discovery_url == f"{ISS}/.well-known/openid-configuration"
    assert issuer.audience == "https://ts.example" and not issuer.single_use and issuer.clock_skew_s == 30


def test_exact_subject_takes_precedence_over_the_namespace_pattern() -> None:
    """Exact first, then system:serviceaccount:<ns>:*; other namespaces and malformed subjects map to nothing."""
    mapping = {"system:serviceaccount:shop:checkout": "checkout", "system:serviceaccount:shop:*": "shop"}
    issuer = parse_trust(trust(service_accounts=mapping), "x").issuers[ISS]
    assert issuer.client_for("system:serviceaccount:shop:checkout") == "checkout"
    assert issuer.client_for("system:serviceaccount:shop:cart") == "shop"
    assert issuer.client_for("system:serviceaccount:shopping:cart") is None
    assert issuer.client_for("system:serviceaccount:shop:cart:extra") is None
    assert issuer.client_for("system:serviceaccount:shop:*") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[]", "not a JSON object"),
        ('{"issuers": [], "x": 1}', "expected"),
        (trust(service_accounts={"system:serviceaccount:*:*": "c"}), "neither"),
        (trust(service_accounts={"shop:checkout": "c"}), "neither"),
        (trust(service_accounts={"system:serviceaccount:a:b": "has space"}), "client id"),
        (trust(service_accounts={}), "non-empty"),
        (trust(jwks_uri="https://a/jwks", discovery_url="https://a/d"), "at most one"),
        (trust(jwks_uri="file:///etc/passwd"), "http(s) URL"),
        (trust(clock_skew_s=-1), "clock_skew_s"),
        (trust(single_use="yes"), "single_use"),
        (trust(colck_skew_s=1), "unknown key"),
        (trust(jwks_file="missing.json"), "does not exist"),
        (json.dumps({"issuers": [json.loads(trust())["issuers"][0]] * 2}), "listed twice"),
        ('{"issuers": [{"issuer": "a", "issuer": "b"}]}', "duplicate"),
    ],
)
def test_bad_trust_files_name_the_setting_and_the_problem(text: str, problem: str, tmp_path: Path) -> None:
    """Every mistake stops start-up with NATIVE_IAM_CLUSTER_ISSUERS_FILE and what is wrong."""
    with pytest.raises(EnvError) as caught:
        parse_trust(text, "x", tmp_path)
    assert "NATIVE_IAM_CLUSTER_ISSUERS_FILE" in str(caught.value) and problem in str(caught.value)


def test_setting_reads_the_file_and_refuses_a_missing_one(tmp_path: Path) -> None:
    """NATIVE_IAM_CLUSTER_ISSUERS_FILE must name a file; unset trusts no cluster."""
    path = tmp_path / "issuers.json"
    path.write_text(trust())
    assert Settings.from_env({"NATIVE_IAM_CLUSTER_ISSUERS_FILE": str(path)}).cluster_issuers_file == path
    with pytest.raises(EnvError, match="NATIVE_IAM_CLUSTER_ISSUERS_FILE"):
        Settings.from_env({"NATIVE_IAM_CLUSTER_ISSUERS_FILE": str(tmp_path / "nope.json")})
    assert not load_trust(None, "x")


def test_jwks_keeps_only_rs256_and_es256_signing_keys() -> None:
    """Private keys, encryption keys and other algorithms in a JWK Set are skipped."""
    rsa, ec = KubernetesIssuer(alg="RS256"), KubernetesIssuer(alg="ES256")
    oct_key = {"kty": "oct", "kid": "hmac", "k": "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5", "alg": "HS256"}
    enc = {**rsa.signing_key.jwk(), "kid": "enc", "use": "enc"}
    document = json.dumps({"keys": [rsa.signing_key.jwk(), ec.signing_key.jwk(), oct_key, enc]}).encode()
    keys = parse_jwks(document)
    assert {kid: alg for kid, (alg, _) in keys.items()} == {rsa.signing_key.kid: "RS256", ec.signing_key.kid: "ES256"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _keys(cluster: KubernetesIssuer, clock: Clock, **options: Any) -> tuple[IssuerKeys, list[str]]:
    fetched: list[str] = []

    async def fetch(url: str) -> bytes:
        fetched.append(url)
        if cluster.down:
            raise OSError("unreachable")
        return json.dumps(cluster.jwks()).encode()

    issuer = ClusterIssuer(issuer=ISS, audience="x", jwks_uri="https://cluster.example/jwks", **options)
    return IssuerKeys(issuer, fetch, clock), fetched


async def test_unknown_kids_refetch_at_most_once_per_interval() -> None:
    """A flood of made-up kids costs one fetch per jwks_refetch_interval_s, not one per request."""
    cluster, clock = KubernetesIssuer(), Clock()
    keys, fetched = _keys(cluster, clock, jwks_refetch_interval_s=10)
    await keys.current()
    assert "made-up-0" not in await keys.after_unknown_kid("made-up-0")
    assert len(fetched) == 1  # the keys were fetched just now: no refetch yet
    clock.now += 10
    for kid in ("made-up-1", "made-up-2", "made-up-3"):
        assert kid not in await keys.after_unknown_kid(kid)
    assert len(fetched) == 2  # one refetch for the three
    clock.now += 10
    await keys.after_unknown_kid("made-up-4")
    assert len(fetched) == 3


async def test_keys_outlive_an_outage_until_their_max_age_then_fail_closed() -> None:
    """The cluster's keys stay usable while the issuer is down, up to jwks_max_age_s; then refused."""
    cluster, clock = KubernetesIssuer(), Clock()
    keys, _ = _keys(cluster, clock, jwks_max_age_s=100, jwks_refetch_interval_s=1)
    assert cluster.signing_key.kid in await keys.current()
    cluster.down = True
    clock.now += 99
    assert cluster.signing_key.kid in await keys.current()
    clock.now += 2
    with pytest.raises(KeysUnavailable):
        await keys.current()


async def test_discovery_must_name_the_configured_issuer(k8s_issuer: KubernetesIssuer) -> None:
    """OIDC Discovery §4.3: a document for another issuer is not used (no keys, refused)."""
    issuer = ClusterIssuer(
        issuer="https://impostor.example",
        audience="x",
        discovery_url=f"{k8s_issuer.url}/.well-known/openid-configuration",
    )
    with pytest.raises(KeysUnavailable):
        await IssuerKeys(issuer).current()
    good = ClusterIssuer(
        issuer=k8s_issuer.issuer, audience="x", discovery_url=f"{k8s_issuer.url}/.well-known/openid-configuration"
    )
    assert k8s_issuer.signing_key.kid in await IssuerKeys(good).current()


class MemoryShortLived:
    """A dict ShortLived for verifier tests (the real ones are tested in test_shortlived.py)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}

    async def add(self, kind: str, key: str, value: str, ttl_s: float) -> bool:
        if (kind, key) in self.values:
            return False
        self.values[kind, key] = value
        return True


async def test_es256_cluster_tokens_verify() -> None:
    """A cluster signing with an EC P-256 key (ES256) is accepted like an RS256 one."""
    with KubernetesIssuer(alg="ES256") as cluster:
        issuer = ClusterIssuer(
            issuer=cluster.issuer,
            audience="ts",
            discovery_url=f"{cluster.url}/.well-known/openid-configuration",
            exact={"system:serviceaccount:shop:checkout": "checkout"},
        )
        verifier = ClientAssertions(Trust({cluster.issuer: issuer}), MemoryShortLived())  # type: ignore[arg-type]
        assertion = await verifier.verify(cluster.token("shop", "checkout", audience="ts"))
    assert assertion.client_id == "checkout" and assertion.subject == "system:serviceaccount:shop:checkout"


def _segment(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


#: One cluster key for every example (an RSA key per example would dominate the run time).
_FUZZ_JWKS = json.dumps(KubernetesIssuer().jwks()).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.text(max_size=60),
    header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit"]), _json, max_size=4),
    claims=st.dictionaries(
        st.sampled_from(["iss", "aud", "exp", "iat", "nbf", "sub", "jti", "kubernetes.io"]), _json, max_size=8
    ),
)
async def test_any_assertion_is_refused_cleanly(raw: str, header: dict[str, Any], claims: dict[str, Any]) -> None:
    """Arbitrary text and arbitrary JOSE-shaped tokens (with the trusted iss or not) are refused with
    InvalidClientAssertion, never another exception."""
    issuer = ClusterIssuer(issuer=ISS, audience="ts", jwks_uri="https://unused.example/jwks")

    async def fetch(url: str) -> bytes:
        return _FUZZ_JWKS

    verifier = ClientAssertions(Trust({ISS: issuer}), MemoryShortLived(), fetch=fetch)  # type: ignore[arg-type]
    for iss in (None, ISS):
        payload = claims if iss is None else {**claims, "iss": iss}
        for token in (raw, f"{_segment(header)}.{_segment(payload)}.c2ln"):
            with pytest.raises(InvalidClientAssertion):
                await verifier.verify(token)
