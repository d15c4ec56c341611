"""Differential test: the sidecar's Check and the token service's CheckAccess on the same tokens.

A seeded generator (:class:`Corpus`) writes ≥10,000 edge-case access tokens — claims missing,
null, empty, of the wrong type, huge, fractional, Infinity/NaN, negative; exp/nbf/iat at their
edges; typ/alg/kid/crit/jku/x5u header variants; duplicate member names; non-canonical
base64url in each segment; signature bit flips — each signed with the running token service's
own signing key. Every token is checked by the sidecar's ext_authz handler (``Authorizer``, keys
fetched from the service's Feed.GetJwks) and by the service's ``check_access`` (what the
CheckAccess RPC calls), both with the same fixed clock and no leeway; their verdicts (allow,
expired, insufficient scope, invalid) must be identical, and the sidecar's own CheckAccess (its
OAuth facade) must answer exactly the token service's seed status. A sample of 300 goes through both real
gRPC servers too.

What the corpus leaves out, because the two answer different questions by design: a well-formed
``aud`` naming only other audiences (an audience is a sidecar's own policy; CheckAccess is asked
on behalf of none), a well-formed ``jti`` other than the issued one (only the token service's
database knows which jtis exist), and whitespace around the token (HTTP header framing, not the
token: tests/sidecar/test_decision.py covers it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from native_iam.oauth.v1 import oauth_pb2, oauth_pb2_grpc
from sidecar.decision import Deny
from sidecar.ext_authz_grpc import handler, parse_response
from sidecar.keys import KeyStore, grpc_fetcher
from sidecar.oauth_facade import OAuthFacade
from tests.sidecar._feed import AUDIENCE, ISSUER
from tests.sidecar.conftest import synced_cache
from tests.sidecar.test_authorization import Rig
from tests.sidecar.test_authorization import _settings as settings_for_sidecar
from tests.token_service.conftest import _fresh_postgres_database, add_identity
from token_service import errors
from token_service.access import check_access
from token_service.app import TokenServiceApp
from token_service.grants import create_token_with_password
from token_service.testing import running_token_service

from ._forge import Signer, b64

pytestmark = pytest.mark.asyncio(loop_scope="module")

SEED = 7515
CORPUS_SIZE = 10_000
GRPC_SAMPLE = 300
ROUTE = {"scopes": "orders:read"}
SCOPES = ("orders:read",)
T = 2_000_000_000  # the fixed "now" of both verifiers (unix s)
# P-256 group order: (r, n - s) is the other valid ECDSA signature over the same input.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class Raw(str):
    """A JSON value written as is (NaN, Infinity, 1e300, 1.0, huge integers, lone surrogates…)."""


Members = list[tuple[str, Any]]


def json_text(members: Members) -> bytes:
    """A JSON object from ``members`` in order, duplicates kept."""
    items = (f"{json.dumps(k)}:{v if isinstance(v, Raw) else json.dumps(v)}" for k, v in members)
    return ("{" + ",".join(items) + "}").encode()


def std_b64(data: bytes) -> str:
    """Base64 with the standard alphabet (+ and /) and no padding: what RFC 7515 forbids."""
    return base64.b64encode(data).rstrip(b"=").decode()


def set_member(members: Members, name: str, value: Any) -> Members:
    """``members`` with ``name`` set to ``value`` (``MISSING`` removes it)."""
    kept = [(k, v) for k, v in members if k != name]
    return kept if value is MISSING else [*kept, (name, value)]


MISSING = object()

# ---- value pools: every claim/header gets well-formed, edge and hostile values ----

TIME = [
    T - 1, T, T + 1, T + 600, 0, -1, 1, 2**53 - 1, 2**53, 2**63, True, None, "", str(T + 600), [T + 600], {},
    T + 0.5, float(T + 600), Raw("Infinity"), Raw("-Infinity"), Raw("NaN"), Raw("1e300"), Raw("-1e300"),
    Raw(f"{T + 600}.0"), Raw(f"{T + 600}e0"), Raw("2E9"), Raw("-0"), Raw("0.0"), Raw("1" + "0" * 400), MISSING,
]  # fmt: skip
TEXT = [
    "alice", "bob", "ALICE", "é", "x" * 64, "x" * 1025, "", " ", None, 0, 1.5, True, [], ["alice"], {},
    "al\nice", "al\x00ice", "\u202e", "\t", Raw('"\\ud800"'), Raw('"\\u0000"'), MISSING,
]  # fmt: skip
# Only jtis that are not the issued one *and* not well-formed (see the module docstring).
JTI = [None, "", 0, 1.5, True, [], {}, "x" * 65, "j\n", "j\x00", Raw('"\\ud800"'), Raw("NaN"), MISSING]
ISS = [ISSUER, ISSUER + "/", ISSUER.upper(), "", None, 1, [ISSUER], {"iss": ISSUER}, "http://evil.test", MISSING]
AUD = [
    AUDIENCE, [AUDIENCE], [AUDIENCE, "other"], [AUDIENCE, AUDIENCE], [], "", None, 1, True, [1], [AUDIENCE, 1],
    [[AUDIENCE]], {}, [AUDIENCE, ""], [AUDIENCE, None], AUDIENCE + "\n", [AUDIENCE, "o\x00"], Raw("NaN"), MISSING,
]  # fmt: skip
SCOPE = [
    "orders:read", "orders:read orders:write", "orders:write", "", " orders:read ", "ORDERS:READ", "orders:*", "*",
    "orders:read\torders:write", "orders:read\u00a0x", "orders:read\x00", "orders:read " + "x" * 300, None, 1,
    ["orders:read"], {}, True, MISSING,
]  # fmt: skip
SCP = [["orders:read"], "orders:read", [], [1], None, ["orders:read", 2], "", 1, {}, MISSING]
USAGE = ["access_token", "refresh_token", "ACCESS_TOKEN", "", None, 1, ["access_token"], MISSING]
ALG = ["ES256", "es256", "none", "None", "HS256", "RS256", "EdDSA", "ES384", "", None, 1, ["ES256"], MISSING]
TYP = [
    "at+jwt", "AT+JWT", "At+Jwt", "application/at+jwt", "APPLICATION/AT+JWT", "at+jwt ", " at+jwt", "jwt", "JWT",
    "rt+jwt", "application/rt+jwt", "application/application/at+jwt", "at+jwt;charset=utf-8", "", None, 1,
    ["at+jwt"], MISSING,
]  # fmt: skip
CRIT = [[], ["exp"], ["b64"], "b64", None, [1], {}]
URL = "http://127.0.0.1:9/jwks.json"
EXTRA_HEADER = [
    ("jku", URL), ("x5u", URL), ("jwk", {"kty": "EC"}), ("x5c", ["AAAA"]), ("b64", False), ("b64", True),
    ("cty", "JWT"), ("zip", "DEF"), ("x", Raw("NaN")), ("x", Raw("1e999")), ("enc", "A128GCM"),
]  # fmt: skip
CLAIM_POOLS: dict[str, list[Any]] = {
    "iss": ISS,
    "sub": TEXT,
    "aud": AUD,
    "exp": TIME,
    "nbf": TIME,
    "iat": TIME,
    "jti": JTI,
    "scope": SCOPE,
    "scp": SCP,
    "token_usage": USAGE,
    "client_id": TEXT,
    "namespace": TEXT,
    "fam": TEXT,
    "x": [Raw("NaN"), Raw("Infinity"), Raw("1e999"), None, [], {"a": [1]}, "y" * 2000],
}


@dataclass
class Corpus:
    """Deterministic edge-case tokens: header and claim mutations, duplicates, encodings, signatures."""

    signer: Signer
    base_header: Members
    base_claims: Members
    rng: random.Random

    def tokens(self, n: int) -> list[str]:
        return [self.token() for _ in range(n)]

    def token(self) -> str:
        header, claims = list(self.base_header), list(self.base_claims)
        for _ in range(self.rng.choice((0, 1, 1, 1, 2, 2, 3))):
            header, claims = self.rng.choice((self._claim, self._claim, self._claim, self._header, self._duplicate))(
                header, claims
            )
        header_bytes, payload_bytes = json_text(header), json_text(claims)
        if self.rng.random() < 0.1:
            payload_bytes = self._raw_payload(claims)
        h, p = b64(header_bytes), b64(payload_bytes)
        if self.rng.random() < 0.12:
            h, p = self._encode(h, p, header_bytes, payload_bytes)
        token = self.signer.sign_segments(h, p)
        if self.rng.random() < 0.15:
            token = self._signature(token)
        if self.rng.random() < 0.03:
            token = self._structure(token)
        return token

    def _claim(self, header: Members, claims: Members) -> tuple[Members, Members]:
        name = self.rng.choice(list(CLAIM_POOLS))
        return header, set_member(claims, name, self.rng.choice(CLAIM_POOLS[name]))

    def _header(self, header: Members, claims: Members) -> tuple[Members, Members]:
        kind = self.rng.randrange(6)
        if kind == 0:
            return set_member(header, "alg", self.rng.choice(ALG)), claims
        if kind == 1:
            return set_member(header, "typ", self.rng.choice(TYP)), claims
        if kind == 2:
            kid = self.signer.kid
            return set_member(
                header, "kid", self.rng.choice([kid, kid.upper(), kid + " ", "", None, 1, [kid], MISSING])
            ), claims
        if kind == 3:
            return set_member(header, "crit", self.rng.choice(CRIT)), claims
        if kind == 4:  # refresh typ and usage together: a refresh token presented as an access token
            header = set_member(header, "typ", "rt+jwt")
            return header, set_member(claims, "token_usage", "refresh_token")
        return [*header, self.rng.choice(EXTRA_HEADER)], claims

    def _duplicate(self, header: Members, claims: Members) -> tuple[Members, Members]:
        """A member written twice; the second copy is a hostile value, or the same one."""
        if self.rng.random() < 0.3:
            name = self.rng.choice(["alg", "typ", "kid"])
            value = dict(header).get(name) if self.rng.random() < 0.3 else self.rng.choice(ALG + TYP)
            extra = [(name, None if value is MISSING else value)]
            return (extra + header if self.rng.random() < 0.5 else header + extra), claims
        name = self.rng.choice(["exp", "sub", "scope", "token_usage", "iss", "aud", "jti"])
        value = dict(claims).get(name) if self.rng.random() < 0.3 else self.rng.choice(CLAIM_POOLS[name])
        value = None if value is MISSING else value
        extra = [(name, value)]
        return header, (extra + claims if self.rng.random() < 0.5 else claims + extra)

    def _raw_payload(self, claims: Members) -> bytes:
        """Claims that are not a plain UTF-8 JSON object, or one right at the size limit."""
        text = json_text(claims)
        choices: list[Callable[[], bytes]] = [
            lambda: text.decode().encode("utf-16"),  # json.loads(bytes) would guess UTF-16
            lambda: b"\xef\xbb\xbf" + text,  # a UTF-8 byte-order mark
            lambda: text + b"x",
            lambda: b" " + text + b"\n",  # surrounding JSON whitespace is valid JSON
            lambda: b"[" + text + b"]",
            lambda: b"null",
            lambda: b"",
            lambda: text.replace(b'"alice"', b'"\xff"'),
            lambda: text[:-1] + b', "deep": ' + b"[" * 3000 + b"]" * 3000 + b"}",
            lambda: json_text([*claims, ("pad", "x" * self.rng.randrange(5850, 6050))]),  # ~8192 bytes
        ]
        return self.rng.choice(choices)()

    def _encode(self, h: str, p: str, header: bytes, payload: bytes) -> tuple[str, str]:
        """A non-canonical spelling of the header or payload segment (then signed as written)."""
        which = self.rng.randrange(2)
        segment, data = (h, header) if which == 0 else (p, payload)
        kind = self.rng.randrange(6)
        if kind == 0:
            segment = std_b64(data)
        elif kind == 1:
            segment = segment + "=" * (-len(segment) % 4 or 4)
        elif kind == 2:
            segment = _set_spare_bits(segment, self.rng)
        elif kind == 3:
            at = self.rng.randrange(len(segment) + 1)
            segment = segment[:at] + self.rng.choice(["~", "!", "*", "é", "%3D", "\n", " ", "."]) + segment[at:]
        elif kind == 4:
            segment = segment[:-1]
        else:
            segment = segment.swapcase()
        return (segment, p) if which == 0 else (h, segment)

    def _signature(self, token: str) -> str:
        head, _, sig = token.rpartition(".")
        raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        kind = self.rng.randrange(9)
        if kind == 0:  # one flipped bit
            bit = self.rng.randrange(len(raw) * 8)
            raw = bytearray(raw)
            raw[bit // 8] ^= 1 << (bit % 8)
            return f"{head}.{b64(bytes(raw))}"
        if kind == 1:
            return f"{head}.{_set_spare_bits(sig, self.rng)}"  # F12: same bytes, other spelling
        if kind == 2:
            return f"{head}.{std_b64(raw)}"
        if kind == 3:
            return f"{head}.{sig}" + "=" * (-len(sig) % 4 or 4)
        if kind == 4:  # the other valid ECDSA signature (r, n - s): both must agree on it
            r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            return f"{head}.{b64(r.to_bytes(32, 'big') + (P256_N - s).to_bytes(32, 'big'))}"
        if kind == 5:  # DER instead of JOSE's r‖s
            der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
            assert decode_dss_signature(der)
            return f"{head}.{b64(der)}"
        if kind == 6:
            return f"{head}.{sig[: self.rng.randrange(len(sig))]}"
        if kind == 7:
            return f"{head}.{sig}A"
        return f"{head}."

    def _structure(self, token: str) -> str:
        return self.rng.choice(
            [token + ".AAAA", token + ".", "." + token, token.replace(".", "..", 1), token.rsplit(".", 1)[0], ""]
        )


def _set_spare_bits(segment: str, rng: random.Random) -> str:
    """``segment`` with non-zero unused bits in its last character (same bytes when decoded
    leniently): the F12 spelling. A segment without spare bits is returned padded instead."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = {2: 0x0F, 3: 0x03}.get(len(segment) % 4)
    if spare is None:
        return segment + "="
    value = alphabet.index(segment[-1])
    return segment[:-1] + alphabet[(value & ~spare) | rng.randrange(1, spare + 1)]


# ---- the two verifiers ----


def sidecar_verdict(response: Any) -> str:
    """allow / expired / insufficient / invalid from a sidecar CheckResponse."""
    if response.status.code == 0:
        return "allow"
    reason = response.dynamic_metadata["deny_reason"]
    if reason in ("expired", "not_yet_valid"):
        return "expired"
    if reason == "insufficient_scope":
        return "insufficient"
    if reason in ("keys_unavailable", "feed_stale", "route_invalid", "internal"):
        return f"error:{reason}"  # never right for a token: it must show up as a disagreement
    return "invalid"


async def service_status(app: TokenServiceApp, token: str) -> str:
    """The seed status check_access (the function behind the CheckAccess RPC) answers."""
    try:
        await check_access(app.core, access_token=token, scopes=SCOPES)
    except errors.GrantError as exc:
        return str(exc.status)
    except Exception as exc:  # a crash is never right: it must show up as a disagreement
        return f"error:{type(exc).__name__}"
    return "OK"


def facade_status(facade: OAuthFacade, token: str) -> str:
    """The seed status the sidecar's own CheckAccess (its OAuth facade) answers."""
    answer = facade.check(token, SCOPES)
    status = answer.check_status if isinstance(answer, Deny) else answer.status
    return oauth_pb2.CheckAccessResponse.Status.Name(status)


VERDICTS = {"OK": "allow", "TOKEN_EXPIRED": "expired", "UNAUTHORIZED": "insufficient", "TOKEN_INVALID": "invalid"}


@dataclass
class World:
    app: TokenServiceApp
    signer: Signer
    rig: Rig
    facade: OAuthFacade
    base_header: Members
    base_claims: Members
    corpus: list[str]

    def token(self, header: dict[str, Any] | None = None, claims: dict[str, Any] | None = None) -> str:
        """A token from the base header and claims with ``header``/``claims`` set (MISSING removes)."""
        h, c = self.base_header, self.base_claims
        for name, value in (header or {}).items():
            h = set_member(h, name, value)
        for name, value in (claims or {}).items():
            c = set_member(c, name, value)
        return self.signer.sign_segments(b64(json_text(h)), b64(json_text(c)))

    async def verdicts(self, token: str) -> tuple[str, str]:
        """(sidecar Check, token service check_access) verdicts on ``token``; the sidecar's own
        CheckAccess (its OAuth facade) must answer exactly the token service's seed status."""
        sidecar = sidecar_verdict(self.rig.check(header=f"Bearer {token}", extensions=ROUTE))
        service = await service_status(self.app, token)
        facade = facade_status(self.facade, token)
        if facade != service:
            return sidecar, f"{service} (facade: {facade})"
        return sidecar, VERDICTS.get(service, service)


@pytest_asyncio.fixture(
    scope="module", loop_scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """The token service (on SQLite, then on PostgreSQL: CheckAccess reads the token's row) and a
    sidecar Check handler trusting its keys, both on the clock T."""
    if request.param == "sqlite":
        db = f"sqlite:///{tmp_path_factory.mktemp('differential')}/native-iam.db"
    else:
        db = await _fresh_postgres_database(request.getfixturevalue("postgres_server").get_uri())
    async with running_token_service(db, issuer=ISSUER, audience=AUDIENCE) as app:
        app.core.clock = lambda: float(T)  # one clock for both verifiers
        await add_identity(app.core, "alice", policy=SCOPES, namespace="shop")
        issued = await create_token_with_password(
            app.core, namespace="shop", identity="alice", password="s3cret-pass", scopes=list(SCOPES)
        )
        claims = jwt.decode(issued.access_token, options={"verify_signature": False})
        key = app.core.keys.signing_key(T)
        signer = Signer(key.private, key.kid, ISSUER, AUDIENCE, alg=key.alg)
        # The sidecar fetches the service's keys the way it does in production: Feed.GetJwks.
        channel = grpc.insecure_channel(app.grpc_target)
        keys = KeyStore(grpc_fetcher(channel), max_age_s=3600, min_refetch_s=3600)
        assert await asyncio.to_thread(keys.refresh)
        revocations = synced_cache(3600)
        rig = Rig(None, keys=keys, revocations=revocations, wall_clock=lambda: float(T), leeway_s=0.0)
        facade = OAuthFacade(
            settings_for_sidecar(leeway_s=0.0),
            keys,
            revocations,
            token_channel=(facade_channel := grpc.aio.insecure_channel(app.grpc_target)),
            wall_clock=lambda: float(T),
        )
        base_header: Members = [("alg", key.alg), ("typ", "at+jwt"), ("kid", key.kid)]
        base_claims: Members = [*claims.items()]
        base_claims = set_member(set_member(base_claims, "iat", T - 60), "nbf", T - 60)
        base_claims = set_member(base_claims, "exp", T + 600)
        corpus = Corpus(signer, base_header, base_claims, random.Random(SEED)).tokens(CORPUS_SIZE)
        try:
            yield World(app, signer, rig, facade, base_header, base_claims, corpus)
        finally:
            keys.close()
            channel.close()
            await facade_channel.close()


def _disagreements(verdicts: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return [(sidecar, service, token[:300]) for sidecar, service, token in verdicts if sidecar != service]


async def test_corpus_has_no_disagreement(world: World) -> None:
    """≥10,000 generated tokens: the sidecar's Check and check_access agree on every one, and
    the corpus exercises every verdict (so a rig that denies everything cannot pass)."""
    verdicts = [(*await world.verdicts(token), token) for token in world.corpus]
    disagreements = _disagreements(verdicts)
    assert not disagreements, f"{len(disagreements)} disagreements, e.g. {disagreements[:5]}"
    counts = {v: sum(1 for s, _, _ in verdicts if s == v) for v in ("allow", "expired", "insufficient", "invalid")}
    assert len(set(world.corpus)) > 0.95 * CORPUS_SIZE, "the generator repeats itself"
    assert counts["allow"] > 1000 and counts["expired"] > 25 and counts["insufficient"] > 50, counts
    assert counts["invalid"] > 5000, counts


async def test_grpc_sample_has_no_disagreement(world: World) -> None:
    """300 tokens of the corpus through both real gRPC servers (the service's OAuth/CheckAccess
    and the sidecar's Authorization/Check handler on its own port): the same verdicts."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler(world.rig.authorizer, asynchronous=True),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    sample = world.corpus[:: CORPUS_SIZE // GRPC_SAMPLE][:GRPC_SAMPLE]
    verdicts = []
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as sidecar_channel,
            grpc.aio.insecure_channel(world.app.grpc_target) as service_channel,
        ):
            authz = external_auth_pb2_grpc.AuthorizationStub(sidecar_channel)
            oauth = oauth_pb2_grpc.OAuthStub(service_channel)
            for token in sample:
                request = external_auth_pb2.CheckRequest()
                http = request.attributes.request.http
                http.method, http.path = "GET", "/orders"
                http.headers["authorization"] = f"Bearer {token}"
                request.attributes.context_extensions.update(ROUTE)
                sidecar = sidecar_verdict(parse_response((await authz.Check(request)).SerializeToString()))
                try:
                    answer = await oauth.CheckAccess(oauth_pb2.CheckAccessRequest(access_token=token, scopes=SCOPES))
                    service = VERDICTS.get(oauth_pb2.CheckAccessResponse.Status.Name(answer.status), "other")
                except grpc.aio.AioRpcError as exc:  # an empty or oversized token is a bad request
                    service = "invalid" if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else f"error:{exc.code()}"
                verdicts.append((sidecar, service, token))
    finally:
        await server.stop(0)
    assert len(verdicts) == GRPC_SAMPLE
    disagreements = _disagreements(verdicts)
    assert not disagreements, f"{len(disagreements)} disagreements, e.g. {disagreements[:5]}"
    assert {s for s, _, _ in verdicts} >= {"allow", "invalid"}


# ---- the disagreements the security review saw (F12 and others), as named regression cases ----


def _signature_with(world: World, chars: str) -> str:
    """A valid token whose signature segment contains one of ``chars`` (ECDSA signatures are
    random: sign again until one does)."""
    for _ in range(200):
        token = world.token()
        if any(c in token.rpartition(".")[2] for c in chars):
            return token
    raise AssertionError("no signature with - or _ in 200 tries")


def _respell(token: str, index: int, spell: Callable[[str], str], world: World) -> str:
    """``token`` with segment ``index`` spelled differently; header/payload are signed again as spelled."""
    parts = token.split(".")
    original, parts[index] = parts[index], spell(parts[index])
    assert parts[index] != original, "the respelling changed nothing"
    return ".".join(parts) if index == 2 else world.signer.sign_segments(parts[0], parts[1])


def _standard_alphabet(segment: str) -> str:
    return segment.replace("-", "+").replace("_", "/")


def _spare_bits(segment: str) -> str:
    return _set_spare_bits(segment, random.Random(0))


REGRESSIONS: dict[str, tuple[Callable[[World], str], str]] = {
    # F12: non-canonical base64url (RFC 7515 §2) in the signature, header and payload.
    "signature_plus_slash": (lambda w: _respell(_signature_with(w, "-_"), 2, _standard_alphabet, w), "invalid"),
    "signature_spare_bits": (lambda w: _respell(w.token(), 2, _spare_bits, w), "invalid"),
    "signature_padding": (lambda w: _respell(w.token(), 2, lambda s: s + "==", w), "invalid"),
    "header_plus_slash": (lambda w: _respell(w.token({"x": "??????"}), 0, _standard_alphabet, w), "invalid"),
    "header_padding": (lambda w: _respell(w.token(), 0, lambda s: s + "=" * (-len(s) % 4 or 4), w), "invalid"),
    "payload_spare_bits": (lambda w: _respell(w.token(claims={"x": "ab"}), 1, _spare_bits, w), "invalid"),
    # Time claims: NumericDate is an integer in [0, 2**53) for both.
    "exp_infinity": (lambda w: w.token(claims={"exp": Raw("Infinity")}), "invalid"),
    "exp_nan": (lambda w: w.token(claims={"exp": Raw("NaN")}), "invalid"),
    "exp_1e300": (lambda w: w.token(claims={"exp": Raw("1e300")}), "invalid"),
    "exp_float": (lambda w: w.token(claims={"exp": T + 600.5}), "invalid"),
    "exp_huge_int": (lambda w: w.token(claims={"exp": 2**63}), "invalid"),
    "exp_bool": (lambda w: w.token(claims={"exp": True}), "invalid"),
    "iat_missing": (lambda w: w.token(claims={"iat": MISSING}), "invalid"),
    "iat_float": (lambda w: w.token(claims={"iat": T - 59.5}), "invalid"),
    "nbf_null": (lambda w: w.token(claims={"nbf": None}), "invalid"),
    "exp_now_is_expired": (lambda w: w.token(claims={"exp": T}), "expired"),
    "nbf_now_is_valid": (lambda w: w.token(claims={"nbf": T}), "allow"),
    "nbf_next_second": (lambda w: w.token(claims={"nbf": T + 1}), "expired"),
    # typ: one rule (RFC 7515 §4.1.9: case-insensitive, "application/" optional).
    "typ_upper_case": (lambda w: w.token({"typ": "AT+JWT"}), "allow"),
    "typ_media_type": (lambda w: w.token({"typ": "application/at+jwt"}), "allow"),
    "typ_jwt": (lambda w: w.token({"typ": "JWT"}), "invalid"),
    "expired_refresh_token": (
        lambda w: w.token({"typ": "rt+jwt"}, {"token_usage": "refresh_token", "exp": T - 1}),
        "invalid",
    ),
    # crit (RFC 7515 §4.1.11): we understand no extension, so any crit is refused.
    "crit_unknown": (lambda w: w.token({"crit": ["x-unknown"], "x-unknown": 1}), "invalid"),
    "crit_empty": (lambda w: w.token({"crit": []}), "invalid"),
    # Claims missing, null, empty or of the wrong type.
    "sub_empty": (lambda w: w.token(claims={"sub": ""}), "invalid"),
    "sub_lone_surrogate": (lambda w: w.token(claims={"sub": Raw('"\\ud800"')}), "invalid"),
    "namespace_null": (lambda w: w.token(claims={"namespace": None}), "invalid"),
    "client_id_number": (lambda w: w.token(claims={"client_id": 7}), "invalid"),
    "aud_missing": (lambda w: w.token(claims={"aud": MISSING}), "invalid"),
    "aud_empty_list": (lambda w: w.token(claims={"aud": []}), "invalid"),
    "jti_too_long": (lambda w: w.token(claims={"jti": "j" * 65}), "invalid"),
    "scope_list": (lambda w: w.token(claims={"scope": ["orders:read"]}), "invalid"),
    "scp_list_is_read": (lambda w: w.token(claims={"scope": MISSING, "scp": ["orders:read"]}), "allow"),
    "scope_nbsp_is_no_delimiter": (lambda w: w.token(claims={"scope": "orders:read\u00a0x"}), "insufficient"),
    # Duplicate member names (RFC 7515 §5.2): refused, whichever copy would win.
    "duplicate_alg": (
        lambda w: w.signer.sign_segments(
            b64(b'{"alg":"none",' + json_text(w.base_header)[1:]), b64(json_text(w.base_claims))
        ),
        "invalid",
    ),
    "duplicate_exp": (
        lambda w: w.signer.sign_segments(
            b64(json_text(w.base_header)), b64(json_text([*w.base_claims, ("exp", T - 100)]))
        ),
        "invalid",
    ),
    "utf16_claims": (
        lambda w: w.signer.sign_segments(
            b64(json_text(w.base_header)), b64(json_text(w.base_claims).decode().encode("utf-16"))
        ),
        "invalid",
    ),
    "control_valid_token": (lambda w: w.token(), "allow"),
}


@pytest.mark.parametrize("name", list(REGRESSIONS))
async def test_regression_case_same_verdict(world: World, name: str) -> None:
    """Each disagreement seen before (and its neighbours) gets the expected verdict from both."""
    build, expected = REGRESSIONS[name]
    assert await world.verdicts(build(world)) == (expected, expected)
