"""Property tests (hypothesis) over the sidecar's token parser, scope-requirement parser and Check.

The Check property compares every decision with an independent statement of the rule: a request
is allowed only when its header carries a token signed by the trusted key with the accepted
algorithm and type, our issuer and audience, unexpired and already valid, naming a subject and a
jti, not revoked, and holding the route's scopes. Inputs mix arbitrary text, random edits of a
valid token and tokens signed by the trusted key over generated (often wrong) claims. Each Check
property runs over both ext_authz transports (gRPC: the handler called directly; HTTP: a real
sidecar/ext_authz_http.py server on a loopback port), which share one decision core.

The suite runs a few hundred examples per property; the ``slow`` variants run 100,000
(``pytest -m slow tests/reliability/test_properties.py``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from envoy.service.auth.v3 import attribute_context_pb2
from google.protobuf import struct_pb2
from google.rpc import code_pb2
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from native_iam import scopes as scope_rules
from native_iam.oauth.v1 import feed_pb2
from native_iam.runtime.listen import bind_tcp
from sidecar import decision, requirements
from sidecar.decision import Policy
from sidecar.ext_authz_http import REQUIREMENT_HEADER, HttpAuthz
from sidecar.keys import parse_jwks
from sidecar.revocations import Kind
from tests.sidecar._feed import AUDIENCE, ISSUER, Issuer, revocation
from tests.sidecar.conftest import synced_cache
from tests.sidecar.test_authorization import Rig

from ._forge import Signer, b64, b64json, hmac_with_public_key

FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=100_000, deadline=None, suppress_health_check=list(HealthCheck))
# 100,000 examples take minutes, past the suite's 120 s per-test timeout.
SLOW_TIMEOUT = pytest.mark.timeout(1800)
LEEWAY = 30.0
UNIVERSE = ("orders:read", "orders:write", "iam:admin", "a", "b:*")
REVOKED_JTI = "revoked-jti"
CUT_IDENTITY = ("shop", "mallory")
MISSING = object()

ISSUER_KEY = Issuer()
SIGNER = Signer(ISSUER_KEY.private_key, ISSUER_KEY.kid, ISSUER, AUDIENCE)
KEYS = parse_jwks(ISSUER_KEY.jwks_json())
POLICY = Policy(ISSUER, (AUDIENCE,), LEEWAY, 8192)


def _rig() -> Rig:
    """A Check handler whose feed never goes stale during a long run, with one revoked jti and one cut identity."""
    rig = Rig(ISSUER_KEY, revocations=synced_cache(max_staleness_s=1e9))
    T, R = feed_pb2.RevocationTarget, feed_pb2.RevocationReason
    rig.revocations.apply(
        feed_pb2.WatchRevocationsResponse(
            kind=Kind.EVENTS,
            cursor=2,
            revocations=[
                revocation(1, T.TOKEN, R.TOKEN_DISABLED, jti=REVOKED_JTI, expires_unix=int(time.time()) + 86400),
                revocation(
                    2,
                    T.IDENTITY,
                    R.IDENTITY_DISABLED,
                    namespace=CUT_IDENTITY[0],
                    identity=CUT_IDENTITY[1],
                    cutoff_unix=int(time.time()) + 86400,
                ),
            ],
        )
    )
    return rig


RIG = _rig()

# --- generated claims, signed by the trusted key ---------------------------------------------

_any_json = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=2))
_scope_sets = st.lists(st.sampled_from(UNIVERSE), max_size=4, unique=True)


def _maybe(*values: Any) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from([*values, MISSING]), _any_json)


def _offset(*offsets: int) -> st.SearchStrategy[Any]:
    # Offsets stay ≥ 5 s away from every leeway edge so the handler's clock and ours agree.
    return st.one_of(st.sampled_from(offsets), st.sampled_from([MISSING, "1", True, None, 1.5e300]))


# Each field: values a valid token may have, and values that must make it fail (with noise).
_CLAIM_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "iss": (st.just(ISSUER), _maybe("http://evil.test")),
    "aud": (st.sampled_from([AUDIENCE, [AUDIENCE, "x"]]), _maybe(["x"], "x", [])),
    "exp": (st.sampled_from([-25, 60, 3600]), _offset(-3600, -35)),
    "nbf": (st.sampled_from([MISSING, -60, 0, 25]), _offset(35, 3600)),
    "iat": (st.sampled_from([-60, 0]), _offset(60)),  # required (MISSING is among the wrong values)
    "sub": (st.sampled_from(["alice", "mallory"]), _maybe("")),
    "jti": (st.sampled_from(["j-1", "j-2", REVOKED_JTI]), _maybe("")),
    "token_usage": (st.just("access_token"), _maybe("refresh_token")),
    "namespace": (st.sampled_from(["shop", "other", MISSING]), _any_json),
    "scope": (_scope_sets.map(" ".join), _maybe()),
    "scp": (st.one_of(_scope_sets, st.just(MISSING)), _maybe()),
}
_HEADER_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "alg": (st.just("ES256"), st.sampled_from(["none", "HS256", "RS256", "EdDSA", "es256", ""])),
    "kid": (st.just(SIGNER.kid), _maybe("k2", "", "../k1")),
    "typ": (st.sampled_from(["at+jwt", "application/at+jwt", "AT+JWT"]), _maybe("JWT", "rt+jwt")),
}


def _mostly_valid(
    fields: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]],
) -> st.SearchStrategy[dict[str, Any]]:
    """Every field valid except a few drawn to be wrong, so both answers occur often."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        wrong = draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True))
        return {name: draw(bad if name in wrong else good) for name, (good, bad) in fields.items()}

    return build()


_claims = _mostly_valid(_CLAIM_FIELDS)
_headers = _mostly_valid(_HEADER_FIELDS)


def _materialize(values: dict[str, Any], now: float, times: tuple[str, ...] = ()) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if value is MISSING:
            continue
        out[key] = now + value if key in times and type(value) is int else value
    return out


def _build(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """The token: ES256-signed for ES256, HMAC-with-public-key for HS256, garbage signature otherwise."""
    if header.get("alg") == "ES256":
        body = json.dumps(claims).encode()
        signing_input = f"{b64json(header)}.{b64(body)}"
        from ._forge import _ALGORITHMS

        return f"{signing_input}.{b64(_ALGORITHMS['ES256'].sign(signing_input.encode(), SIGNER.private_key))}"
    if header.get("alg") == "HS256":
        return hmac_with_public_key(SIGNER)
    return f"{b64json(header)}.{b64json(claims)}.{b64(b'x' * 64)}"


def _date(value: Any) -> bool:
    """A NumericDate as native_iam accepts it: an integer (not bool) in [0, 2**53)."""
    return type(value) is int and 0 <= value < 2**53


def _text(value: Any, limit: int = 1024) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


def _held(claims: dict[str, Any]) -> set[str] | None:
    """The scopes of ``scope`` (space-delimited) and ``scp`` (list or string); None when either
    has the wrong type (a malformed token)."""
    scope, scp = claims.get("scope", ""), claims.get("scp", [])
    scp = scp.split(" ") if isinstance(scp, str) else scp
    if not isinstance(scope, str) or not isinstance(scp, list) or not all(isinstance(s, str) for s in scp):
        return None
    return {s for s in [*scope.split(" "), *scp] if scope_rules.is_valid_scope(s)}


def _should_allow(header: dict[str, Any], claims: dict[str, Any], required: frozenset[str], now: float) -> bool:
    """The rule, stated independently of sidecar/decision.py and native_iam/jws.py."""
    typ = header.get("typ")
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    exp, iat, sub, jti = claims.get("exp"), claims.get("iat"), claims.get("sub"), claims.get("jti")
    nbf = claims.get("nbf", iat)  # a token without nbf is valid from iat
    namespace = claims.get("namespace", "")
    held = _held(claims)
    return (
        header.get("alg") == "ES256"
        and header.get("kid") == SIGNER.kid
        and isinstance(typ, str)
        and typ.lower().removeprefix("application/") == "at+jwt"  # RFC 7515 §4.1.9
        and claims.get("token_usage") == "access_token"
        and claims.get("iss") == ISSUER
        and bool(auds)
        and all(_text(a) for a in auds)
        and AUDIENCE in auds
        and _date(exp)
        and _date(iat)
        and _date(nbf)
        and now < exp + LEEWAY  # RFC 7519 §4.1.4: valid only before exp
        and now + LEEWAY >= nbf
        and _text(sub)
        and _text(jti, 64)
        and (namespace == "" or _text(namespace))
        and held is not None
        and jti != REVOKED_JTI
        and not ((namespace, sub) == CUT_IDENTITY and iat <= time.time() + 86400)
        and required <= held
    )


class _OverHttp:
    """RIG's decision core behind the HTTP transport (sidecar/ext_authz_http.py) on a loopback port,
    its event loop on a thread, asked over one keep-alive connection (reopened after a refusal)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        server = HttpAuthz(RIG.authorizer, max_token_bytes=8192)
        sock = bind_tcp("127.0.0.1:0", "TEST")
        self.port = asyncio.run_coroutine_threadsafe(server.start(sock), self._loop).result(10)
        self._conn: socket.socket | None = None
        self._file: Any = None

    def check(self, header_value: str | None, required: frozenset[str]) -> tuple[int, bytes]:
        lines = ["GET /orders HTTP/1.1", "host: orders.test"]
        if header_value is not None:
            lines.append(f"authorization: {header_value}")
        if required:
            lines.append(f"{REQUIREMENT_HEADER}: {json.dumps({'scopes': ' '.join(sorted(required))})}")
        if self._conn is None:
            self._conn = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            self._file = self._conn.makefile("rb")
        self._conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = int(self._file.readline().split()[1])
        length = 0
        while (line := self._file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = self._file.read(length)
        if status == 400:  # a refused request closes the connection
            self._file.close()
            self._conn.close()
            self._conn = None
        return status, body

    def close(self) -> None:
        if self._conn is not None:
            self._file.close()
            self._conn.close()
            self._conn = None
        self._loop.call_soon_threadsafe(self._loop.stop)


_OVER_HTTP: list[_OverHttp] = []


@pytest.fixture(scope="module", autouse=True)
def _close_over_http() -> Iterator[None]:
    yield
    while _OVER_HTTP:
        _OVER_HTTP.pop().close()


def _check(header_value: str | None, required: frozenset[str], transport: str = "grpc") -> bool:
    """Run Check on the shared rig over ``transport``; True when allowed. Any denial must be a proper
    RFC 6750 answer."""
    if transport == "http":
        # What Envoy can send: no line breaks or NUL in a value, no whitespace around it (HTTP/1.1
        # strips it). A header that Envoy would refuse or trim says nothing about the decision.
        assume(
            header_value is None
            or (not any(c in header_value for c in "\r\n\0") and header_value == header_value.strip(" \t"))
        )
        if not _OVER_HTTP:
            _OVER_HTTP.append(_OverHttp())
        status, _ = _OVER_HTTP[0].check(header_value, required)
        assert status in (200, 400, 401, 403), status
        return status == 200
    response = RIG.check(header=header_value, extensions={"scopes": " ".join(sorted(required))} if required else None)
    if response.status.code == code_pb2.OK:
        return True
    assert response.denied_response.status.code in (400, 401, 403), response
    return False


#: Every Check property runs over both transports: one decision core, two translations.
TRANSPORTS = pytest.mark.parametrize("transport", ["grpc", "http"])


def _signed_claims_property(
    header: dict[str, Any], claims: dict[str, Any], required: list[str], transport: str = "grpc"
) -> None:
    now = int(time.time())  # NumericDates are integers; the offsets keep ≥ 5 s from every edge
    h = _materialize(header, now)
    c = _materialize(claims, now, times=("exp", "nbf", "iat"))
    token = _build(h, c)
    allowed = _check(f"Bearer {token}", frozenset(required), transport)
    event("allowed" if allowed else "denied")  # --hypothesis-show-statistics: both must occur
    assert allowed == _should_allow(h, c, frozenset(required), now), (h, c, required)


@TRANSPORTS
@FAST
@given(header=_headers, claims=_claims, required=_scope_sets.filter(lambda s: "b:*" not in s))
def test_check_decides_signed_claims_as_the_rule_says(
    transport: str, header: dict, claims: dict, required: list[str]
) -> None:
    """Tokens signed by the trusted key over generated claims: Check allows exactly what the rule allows."""
    _signed_claims_property(header, claims, required, transport)


@TRANSPORTS
@pytest.mark.slow
@SLOW_TIMEOUT
@SLOW
@given(header=_headers, claims=_claims, required=_scope_sets.filter(lambda s: "b:*" not in s))
def test_check_decides_signed_claims_as_the_rule_says_slow(
    transport: str, header: dict, claims: dict, required: list[str]
) -> None:
    """The same property over 100,000 examples."""
    _signed_claims_property(header, claims, required, transport)


# --- edits of a valid token, and arbitrary text ----------------------------------------------

VALID = SIGNER.sign(SIGNER.claims(exp=int(time.time()) + 30 * 24 * 3600))
VALID_SIGNATURE = base64.urlsafe_b64decode(VALID.split(".")[2] + "==")


def _same_token(candidate: str) -> bool:
    """True when ``candidate`` is ``VALID`` up to base64 spellings of the same signature bytes."""
    parts = candidate.split(".")
    if len(parts) != 3 or parts[:2] != VALID.split(".")[:2]:
        return False
    try:
        sig = base64.b64decode(parts[2] + "=" * (-len(parts[2]) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return False
    return sig == VALID_SIGNATURE


_edits = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "replace", "swap"]),
        st.integers(0, len(VALID) + 8),
        st.characters(codec="utf-8"),
    ),
    min_size=1,
    max_size=4,
)


def _apply(token: str, edits: list[tuple[str, int, str]]) -> str:
    chars = list(token)
    for op, index, char in edits:
        i = index % (len(chars) + 1)
        if op == "insert":
            chars.insert(i, char)
        elif chars and op == "delete":
            del chars[min(i, len(chars) - 1)]
        elif chars and op == "replace":
            chars[min(i, len(chars) - 1)] = char
        elif op == "swap":
            segments = "".join(chars).split(".")
            segments.reverse()
            chars = list(".".join(segments))
    return "".join(chars)


_schemes = st.sampled_from(["Bearer ", "bearer ", "BEARER  ", "Bearer\t", "Basic ", "", "Bearer ,"])


def _edited_token_property(scheme: str, edits: list[tuple[str, int, str]], transport: str = "grpc") -> None:
    token = _apply(VALID, edits)
    allowed = _check(scheme + token, frozenset({"orders:read"}), transport)
    event("allowed" if allowed else "denied")
    if allowed:
        assert scheme.strip().lower() == "bearer" and _same_token(token.strip(" ")), (scheme, token)


@TRANSPORTS
@FAST
@given(scheme=_schemes, edits=_edits)
def test_edited_valid_token_is_never_allowed(transport: str, scheme: str, edits: list[tuple[str, int, str]]) -> None:
    """Random edits of a valid token (inserted, deleted, replaced characters, swapped segments) are
    denied unless they only respell the same signature bytes."""
    _edited_token_property(scheme, edits, transport)


@TRANSPORTS
@pytest.mark.slow
@SLOW_TIMEOUT
@SLOW
@given(scheme=_schemes, edits=_edits)
def test_edited_valid_token_is_never_allowed_slow(
    transport: str, scheme: str, edits: list[tuple[str, int, str]]
) -> None:
    """The same property over 100,000 examples."""
    _edited_token_property(scheme, edits, transport)


_header_values = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=~+/ ", max_size=300).map(
        lambda t: "Bearer " + t
    ),
    st.binary(max_size=200).map(lambda b: "Bearer " + b.decode("latin-1")),
)


@TRANSPORTS
@FAST
@given(value=_header_values, required=_scope_sets.filter(lambda s: "b:*" not in s))
def test_arbitrary_header_is_never_allowed(transport: str, value: str | None, required: list[str]) -> None:
    """Arbitrary Authorization values (text, token-alphabet noise, latin-1 bytes) are always denied."""
    assert not _check(value, frozenset(required), transport)


@TRANSPORTS
@pytest.mark.slow
@SLOW_TIMEOUT
@SLOW
@given(value=_header_values, required=_scope_sets.filter(lambda s: "b:*" not in s))
def test_arbitrary_header_is_never_allowed_slow(transport: str, value: str | None, required: list[str]) -> None:
    """The same property over 100,000 examples."""
    assert not _check(value, frozenset(required), transport)


# --- the token parser alone ------------------------------------------------------------------


_extract_inputs = {"value": st.one_of(st.none(), st.text(max_size=400)), "require_scheme": st.booleans()}


def _extract_property(value: str | None, require_scheme: bool) -> None:
    result = decision.extract_token(value, require_scheme=require_scheme, max_bytes=8192)
    if isinstance(result, str):
        assert result and all(c.isascii() and (c.isalnum() or c in "-._~+/=") for c in result)
    else:
        assert result is None or isinstance(result, decision.Deny)


@FAST
@given(**_extract_inputs)
def test_extract_token_never_raises_and_returns_a_b64token(value: str | None, require_scheme: bool) -> None:
    """extract_token answers None, a Deny or an RFC 6750 b64token, and never raises."""
    _extract_property(value, require_scheme)


@pytest.mark.slow
@SLOW_TIMEOUT
@SLOW
@given(**_extract_inputs)
def test_extract_token_never_raises_and_returns_a_b64token_slow(value: str | None, require_scheme: bool) -> None:
    """The same property over 100,000 examples."""
    _extract_property(value, require_scheme)


_segments = st.lists(
    st.one_of(
        st.text(max_size=60),
        st.binary(max_size=60).map(b64),
        st.recursive(
            _any_json, lambda inner: st.lists(inner) | st.dictionaries(st.text(max_size=5), inner), max_leaves=10
        ).map(b64json),
    ),
    min_size=0,
    max_size=5,
)


@FAST
@given(segments=_segments)
def test_verify_never_raises_and_never_accepts_garbage(segments: list[str]) -> None:
    """decision.verify over arbitrary segments returns a Deny (no exception, no principal)."""
    assert isinstance(decision.verify(".".join(segments), KEYS, POLICY, time.time()), decision.Deny)


@pytest.mark.slow
@SLOW_TIMEOUT
@SLOW
@given(segments=_segments)
def test_verify_never_raises_and_never_accepts_garbage_slow(segments: list[str]) -> None:
    """The same property over 100,000 examples."""
    assert isinstance(decision.verify(".".join(segments), KEYS, POLICY, time.time()), decision.Deny)


# --- the scope-requirement parser ------------------------------------------------------------

_words = st.sampled_from(["orders:read", "orders:write", "a", "true", "false", "TRUE", "", "x y", 'q"', "é"])
_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(_words, st.booleans(), st.none(), st.integers(-2, 2)),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["scopes", "any_of", "anonymous", "methods", "GET", "post", "x"]), inner, max_size=3
        )
    ),
    max_leaves=12,
)
_metadata = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(["scopes", "any_of", "anonymous", "methods", "extra"]), _values, max_size=4),
)
_extensions = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(
            ["scopes", "any_of", "anonymous", "scopes.POST", "anonymous.GET", "scopes.get", "x", "scopes.P.Q"]
        ),
        st.one_of(_words, st.text(max_size=20)),
        max_size=4,
    ),
)


def _says_anonymous(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            # `anonymous` in metadata, `anonymous` or `anonymous.METHOD` in context_extensions
            (k.partition(".")[0] == "anonymous" and (v is True or (isinstance(v, str) and v.lower() == "true")))
            or _says_anonymous(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_says_anonymous(v) for v in value)
    return False


def _requirement_property(metadata: dict | None, extensions: dict | None) -> None:
    try:
        requirement = requirements.parse(metadata, extensions)
    except requirements.RequirementError:
        return
    rules = [requirement.default, *requirement.methods.values()]
    if not (_says_anonymous(metadata) or _says_anonymous(extensions)):
        assert not any(rule.anonymous for rule in rules)
    for rule in rules:
        assert rule.anonymous or rule.alternatives, "a non-anonymous rule with no alternative could never be met"
        for alternative in rule.alternatives:
            assert all(scope_rules.is_valid_scope(s) for s in alternative)


@FAST
@given(metadata=_metadata, extensions=_extensions)
def test_requirement_parser_fails_closed(metadata: dict | None, extensions: dict | None) -> None:
    """requirements.parse raises only RequirementError; a route is anonymous only when it says so,
    and every scope a rule names is a valid scope."""
    _requirement_property(metadata, extensions)


@pytest.mark.slow
@SLOW_TIMEOUT
@SLOW
@given(metadata=_metadata, extensions=_extensions)
def test_requirement_parser_fails_closed_slow(metadata: dict | None, extensions: dict | None) -> None:
    """The same property over 100,000 examples."""
    _requirement_property(metadata, extensions)


@FAST
@given(metadata=_metadata.filter(lambda m: m is not None))
def test_route_metadata_struct_never_raises_anything_else(metadata: dict) -> None:
    """Through the Resolver (Envoy's Struct, numbers as floats), bad metadata is a RequirementError."""
    struct = struct_pb2.Struct()
    try:
        struct.update(metadata)
    except (ValueError, TypeError):
        return
    attributes = attribute_context_pb2.AttributeContext()
    attributes.route_metadata_context.filter_metadata["native_iam"].CopyFrom(struct)
    with contextlib.suppress(requirements.RequirementError):
        requirements.Resolver().resolve(attributes)
