"""Hostile tokens and headers against the sidecar's ext_authz Check handler (in process).

Every case of :data:`tests.reliability._forge.CASES` is denied with a 4xx and the reason the
catalogue names, counted by the decision metric; nothing escapes as an exception. A control case
(the same signer's valid token) is allowed, so the rig itself can fail.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.rpc import code_pb2
from jwt.algorithms import ECAlgorithm, HMACAlgorithm

from native_iam.oauth.v1 import oauth_pb2
from sidecar import decision
from sidecar.decision import Deny, Policy
from sidecar.keys import VerifyKey, parse_jwks
from tests.sidecar._feed import AUDIENCE, ISSUER, Issuer
from tests.sidecar.test_authorization import Rig
from tests.sidecar.test_oauth_facade import _facade

from ._forge import CASES, Case, Signer, bearer, hmac_with_public_key

ROUTE = {"scopes": "orders:read"}


@pytest.fixture
def rig(issuer: Issuer) -> Rig:
    return Rig(issuer)


@pytest.fixture
def signer(issuer: Issuer) -> Signer:
    return Signer(issuer.private_key, issuer.kid, ISSUER, AUDIENCE)


def _reasons(rig: Rig) -> dict[str, float]:
    samples = rig.registry.get_sample_value
    return {
        r.value: samples("native_iam_sidecar_decisions_total", {"result": "deny", "reason": r.value}) or 0.0
        for r in decision.Reason
    }


def test_control_valid_token_is_allowed(rig: Rig, signer: Signer) -> None:
    """The signer's untampered token passes the same route: the hostile cases below fail for their flaw."""
    assert rig.check(header=bearer(signer.sign()), extensions=ROUTE).status.code == code_pb2.OK


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_header_is_denied_with_its_reason(rig: Rig, signer: Signer, case: Case) -> None:
    """A hostile Authorization value is a 4xx deny naming the expected reason, never an allow or a 5xx."""
    before = _reasons(rig)
    response = rig.check(header=case.build(signer), extensions=ROUTE)
    assert response.status.code != code_pb2.OK
    status = response.denied_response.status.code
    assert status in (400, 401, 403), (status, response.denied_response.body)
    after = _reasons(rig)
    counted = {reason for reason in after if after[reason] > before[reason]}
    assert len(counted) == 1 and counted <= case.reasons, (counted, case.reasons)
    body = json.loads(response.denied_response.body)
    assert signer.sign().split(".")[1][:20] not in response.denied_response.body
    assert set(body) <= {"error", "error_description", "scope"}


@pytest.mark.parametrize("form", ["jwk_json", "bare_jwk_json", "raw"])
def test_hs256_forgery_verifies_under_the_public_key_form_it_names(signer: Signer, form: str) -> None:
    """The algorithm-confusion cases are real attacks: a verifier that took HS256 with the public
    key in that form (the published JWK's JSON, PyJWT's to_jwk text, the 65-byte EC point) as its
    secret would accept them — so the sidecar's and token service's denials above are the defence."""
    key = {
        "jwk_json": json.dumps(signer.public_jwk(), separators=(",", ":")).encode(),
        "bare_jwk_json": ECAlgorithm.to_jwk(signer.private_key.public_key()).encode(),
        "raw": signer.public_raw(),
    }[form]
    # PyJWT's decode() refuses JWK-looking HMAC secrets, so its HS256 primitive is used directly.
    signing_input, _, signature = hmac_with_public_key(signer, form).rpartition(".")
    mac = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert HMACAlgorithm(HMACAlgorithm.SHA256).verify(signing_input.encode(), key, mac)
    assert json.loads(key)["kty"] == "EC" if form != "raw" else key[:1] == b"\x04" and len(key) == 65


def test_valid_token_with_jku_and_x5u_headers_never_fetches_them(rig: Rig, signer: Signer) -> None:
    """jku/x5u naming an attacker's key server are ignored: nothing is fetched from there, and a
    token signed by the attacker's key published there is denied."""
    attacker = ec.generate_private_key(ec.SECP256R1())
    hits: list[str] = []

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            jwk = {**json.loads(ECAlgorithm.to_jwk(attacker.public_key())), "kid": "evil", "alg": "ES256"}
            body = json.dumps({"keys": [jwk]}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/jwks.json"
        forged = jwt.encode(
            signer.claims(),
            attacker,
            algorithm="ES256",
            headers={"typ": "at+jwt", "kid": "evil", "jku": url, "x5u": url},
        )
        denied = rig.check(header=bearer(forged), extensions=ROUTE)
        genuine = rig.check(header=bearer(signer.sign(jku=url, x5u=url)), extensions=ROUTE)
    finally:
        server.shutdown()
        server.server_close()
    assert denied.status.code != code_pb2.OK and denied.denied_response.status.code == 401
    assert genuine.status.code == code_pb2.OK  # the headers are ignored, not a reason to deny
    assert hits == []


@pytest.fixture
def exact_keys(issuer: Issuer) -> dict[str, VerifyKey]:
    return parse_jwks(issuer.jwks_json())


LEEWAY = 30.0


@pytest.mark.parametrize(
    ("offset", "allowed"),
    [(-1.0, True), (-0.001, True), (0.0, False), (0.001, False), (1.0, False)],
    ids=["inside", "just_before", "at_edge", "just_past", "past"],
)
def test_exp_at_the_leeway_edge(signer: Signer, exact_keys: dict[str, VerifyKey], offset: float, allowed: bool) -> None:
    """exp + leeway is the first refused instant (RFC 7519 §4.1.4: valid only *before* exp; the
    token service's edge, shifted by the leeway): a millisecond earlier a token passes."""
    now = 2_000_000_000.0
    token = signer.sign(signer.claims(iat=int(now) - 600, nbf=int(now) - 600, exp=int(now)))
    policy = Policy(ISSUER, (AUDIENCE,), LEEWAY, 8192)
    result = decision.verify(token, exact_keys, policy, now + LEEWAY + offset)
    assert isinstance(result, decision.Principal) is allowed
    if not allowed:
        assert result.reason is decision.Reason.EXPIRED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("offset", "allowed"),
    [(1.0, True), (0.0, True), (-0.001, False), (-1.0, False)],
    ids=["inside", "at_edge", "just_before", "before"],
)
def test_nbf_at_the_leeway_edge(signer: Signer, exact_keys: dict[str, VerifyKey], offset: float, allowed: bool) -> None:
    """nbf - leeway is the first accepted instant: at it a token passes, a millisecond earlier it is not yet valid."""
    nbf = 2_000_000_000
    token = signer.sign(signer.claims(iat=nbf, nbf=nbf, exp=nbf + 600))
    policy = Policy(ISSUER, (AUDIENCE,), LEEWAY, 8192)
    result = decision.verify(token, exact_keys, policy, nbf - LEEWAY + offset)
    assert isinstance(result, decision.Principal) is allowed
    if not allowed:
        assert result.reason is decision.Reason.NOT_YET_VALID  # type: ignore[union-attr]


def test_leeway_edges_through_the_check_handler(rig: Rig, signer: Signer) -> None:
    """Through Check (real clock, default 30 s leeway): 2 s inside the leeway passes, 2 s beyond is denied."""
    now = int(time.time())
    inside = signer.sign(signer.claims(exp=now - 28))
    beyond = signer.sign(signer.claims(exp=now - 32))
    early_ok = signer.sign(signer.claims(nbf=now + 28))
    early_no = signer.sign(signer.claims(nbf=now + 32))
    assert rig.check(header=bearer(inside), extensions=ROUTE).status.code == code_pb2.OK
    assert rig.check(header=bearer(early_ok), extensions=ROUTE).status.code == code_pb2.OK
    assert rig.check(header=bearer(beyond), extensions=ROUTE).denied_response.status.code == 401
    assert rig.check(header=bearer(early_no), extensions=ROUTE).denied_response.status.code == 401


def test_padded_signature_never_changes_the_principal(rig: Rig, signer: Signer) -> None:
    """Base64 padding on the signature segment (RFC 7515 forbids it) is either refused or decodes
    to the very same signature: it can never yield another identity or other scopes."""
    token = signer.sign()
    padded = token + "=" * (-len(token.split(".")[2]) % 4)
    assert padded != token
    plain = rig.check(header=bearer(token), extensions=ROUTE)
    response = rig.check(header=bearer(padded), extensions=ROUTE)
    if response.status.code == code_pb2.OK:
        assert response.ok_response.headers == plain.ok_response.headers
    else:
        assert response.denied_response.status.code == 401


def _facade_token(header_value: str) -> str:
    scheme, _, rest = header_value.partition(" ")
    return rest if scheme == "Bearer" else header_value


# The facade takes the token itself, not a header: a case whose only flaw is the header's missing
# scheme hands it a genuine token.
TOKEN_CASES = [c for c in CASES if c.name != "bare_token_without_scheme"]


@pytest.mark.parametrize("case", TOKEN_CASES, ids=lambda c: c.name)
async def test_facade_check_access_refuses_hostile_token(issuer: Issuer, signer: Signer, case: Case) -> None:
    """The sidecar's local CheckAccess (the workload's OAuth API) refuses every hostile token too."""
    result = _facade(issuer).check(_facade_token(case.build(signer)), ("orders:read",))
    assert isinstance(result, Deny) or result.status != oauth_pb2.CheckAccessResponse.OK, result


async def test_facade_control_valid_token_is_ok(issuer: Issuer, signer: Signer) -> None:
    """The signer's untampered token is OK at the facade: the refusals above are the input's doing."""
    result = _facade(issuer).check(signer.sign(), ("orders:read",))
    assert result.status == oauth_pb2.CheckAccessResponse.OK  # type: ignore[union-attr]
