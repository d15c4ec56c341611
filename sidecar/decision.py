"""The decision, as pure functions: a bearer token + keys + revocations + a rule → allow or deny.

Nothing here does I/O, logs or reads the clock: the caller passes ``now``. Every deny carries a
:class:`Reason` (low cardinality: it labels a metric) and a human description that never contains
the token. :data:`OUTCOMES` is the one table from reason to HTTP status, RFC 6750 error code and
the seed's ``CheckAccess`` status.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from google.rpc import code_pb2

from native_iam import claims, scopes
from native_iam.oauth.v1 import oauth_pb2

from .keys import VerifyKey
from .requirements import Rule
from .revocations import DESCRIPTIONS
from .revocations import Reason as RevocationReason

CheckStatus = oauth_pb2.CheckAccessResponse.Status


class Reason(enum.StrEnum):
    """Why a request was denied (the ``reason`` label of the decision metric)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    SIGNATURE = "signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    ISSUER = "issuer"
    AUDIENCE = "audience"
    TOKEN_TYPE = "token_type"
    UNKNOWN_KID = "unknown_kid"
    REVOKED = "revoked"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    KEYS_UNAVAILABLE = "keys_unavailable"
    FEED_STALE = "feed_stale"
    ROUTE_INVALID = "route_invalid"
    PATH_NOT_NORMALIZED = "path_not_normalized"
    INTERNAL = "internal"


class Outcome(NamedTuple):
    """How a deny reason is answered: HTTP status, RFC 6750 error code (None: no code), the seed's
    CheckAccess status, and the ``google.rpc.Code`` put in ``CheckResponse.status`` (Envoy treats
    any non-OK code as a deny and answers with the DeniedHttpResponse)."""

    http_status: int
    error: str | None
    check_status: int
    rpc_code: int


#: A malformed request (not token): 400 invalid_request (RFC 6750 §3.1).
BAD_REQUEST = Outcome(400, "invalid_request", CheckStatus.TOKEN_INVALID, code_pb2.INVALID_ARGUMENT)

OUTCOMES: Mapping[Reason, Outcome] = {
    # RFC 6750 §3.1: a request without credentials gets no error code.
    Reason.MISSING: Outcome(401, None, CheckStatus.TOKEN_INVALID, code_pb2.UNAUTHENTICATED),
    Reason.MALFORMED: Outcome(401, "invalid_token", CheckStatus.TOKEN_INVALID, code_pb2.UNAUTHENTICATED),
    Reason.SIGNATURE: Outcome(401, "invalid_token", CheckStatus.TOKEN_INVALID, code_pb2.UNAUTHENTICATED),
    Reason.EXPIRED: Outcome(401, "invalid_token", CheckStatus.TOKEN_EXPIRED, code_pb2.UNAUTHENTICATED),
    Reason.NOT_YET_VALID: Outcome(401, "invalid_token", CheckStatus.TOKEN_EXPIRED, code_pb2.UNAUTHENTICATED),
    Reason.ISSUER: Outcome(401, "invalid_token", CheckStatus.TOKEN_INVALID, code_pb2.UNAUTHENTICATED),
    Reason.AUDIENCE: Outcome(401, "invalid_token", CheckStatus.TOKEN_INVALID, code_pb2.UNAUTHENTICATED),
    Reason.TOKEN_TYPE: Outcome(401, "invalid_token", CheckStatus.TOKEN_INVALID, code_pb2.UNAUTHENTICATED),
    Reason.UNKNOWN_KID: Outcome(401, "invalid_token", CheckStatus.TOKEN_INVALID, code_pb2.UNAUTHENTICATED),
    Reason.REVOKED: Outcome(401, "invalid_token", CheckStatus.TOKEN_DISABLED, code_pb2.UNAUTHENTICATED),
    # RFC 6750 §3.1: insufficient_scope is 403 and may name the needed scope.
    Reason.INSUFFICIENT_SCOPE: Outcome(403, "insufficient_scope", CheckStatus.UNAUTHORIZED, code_pb2.PERMISSION_DENIED),
    # The sidecar cannot decide safely: fail closed with 503 so clients retry.
    Reason.KEYS_UNAVAILABLE: Outcome(503, "temporarily_unavailable", CheckStatus.TOKEN_INVALID, code_pb2.UNAVAILABLE),
    Reason.FEED_STALE: Outcome(503, "temporarily_unavailable", CheckStatus.TOKEN_INVALID, code_pb2.UNAVAILABLE),
    Reason.ROUTE_INVALID: Outcome(500, "server_error", CheckStatus.TOKEN_INVALID, code_pb2.INTERNAL),
    # The route was chosen from a path the workload would read differently (sidecar/request_path.py).
    Reason.PATH_NOT_NORMALIZED: BAD_REQUEST,
    Reason.INTERNAL: Outcome(500, "server_error", CheckStatus.TOKEN_INVALID, code_pb2.INTERNAL),
}

#: Seed CheckAccess status for each revocation reason (feed.proto documents the mapping).
REVOCATION_STATUS: Mapping[int, int] = {
    RevocationReason.REVOCATION_REASON_UNSPECIFIED: CheckStatus.TOKEN_DISABLED,
    RevocationReason.TOKEN_DISABLED: CheckStatus.TOKEN_DISABLED,
    RevocationReason.TOKEN_DELETED: CheckStatus.TOKEN_NOT_FOUND,
    RevocationReason.IDENTITY_DISABLED: CheckStatus.TOKEN_DISABLED,
    RevocationReason.IDENTITY_DELETED: CheckStatus.TOKEN_NOT_FOUND,
    RevocationReason.POLICY_CHANGED: CheckStatus.TOKEN_DISABLED,
    RevocationReason.KEY_RETIRED: CheckStatus.TOKEN_INVALID,
    RevocationReason.REFRESH_TOKEN_REUSE: CheckStatus.TOKEN_DISABLED,
    RevocationReason.CLIENT_REVOKED: CheckStatus.TOKEN_DISABLED,
    RevocationReason.NAMESPACE_CUT: CheckStatus.TOKEN_NOT_FOUND,
}


@dataclass(frozen=True, slots=True)
class Principal:
    """What a verified access token says."""

    identity: str
    namespace: str
    scopes: frozenset[str]
    jti: str
    kid: str
    client_id: str
    iat: float
    exp: float


@dataclass(frozen=True, slots=True)
class Deny:
    reason: Reason
    description: str
    # insufficient_scope: the scopes to name in WWW-Authenticate.
    needed: tuple[str, ...] = ()
    jti: str = ""
    # revoked: the feed's RevocationReason.
    revocation: int | None = None
    # A malformed *request* (not token) is 400 invalid_request (RFC 6750 §3.1).
    bad_request: bool = False

    @property
    def outcome(self) -> Outcome:
        if self.bad_request:
            return BAD_REQUEST
        return OUTCOMES[self.reason]

    @property
    def check_status(self) -> int:
        if self.revocation is not None:
            return REVOCATION_STATUS.get(self.revocation, CheckStatus.TOKEN_DISABLED)
        return self.outcome.check_status


@dataclass(frozen=True, slots=True)
class Policy:
    """The verification parameters (from Settings)."""

    issuer: str
    audiences: tuple[str, ...]
    leeway_s: float
    max_token_bytes: int


# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 9068 §2.1: "at+jwt"; the media-type form is equivalent (RFC 7515 §4.1.9).
_ACCESS_TYPS = (claims.ACCESS_TOKEN_TYP, "application/" + claims.ACCESS_TOKEN_TYP)
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+) *")


def extract_token(value: str | None, *, require_scheme: bool, max_bytes: int) -> str | Deny | None:
    """The token in a header value; None when there is none; a 400 Deny when the header is malformed."""
    if value is None or value.strip() == "":
        return None
    if len(value) > max_bytes + 16:
        return Deny(Reason.MALFORMED, "the token is too long", bad_request=True)
    match = _BEARER.fullmatch(value)
    if match is not None:
        token = match.group(1)
    elif require_scheme:
        if value.split(" ", 1)[0].lower() != "bearer":
            return None  # another scheme (Basic, …): this request carries no bearer token
        return Deny(Reason.MALFORMED, "expected 'Bearer <token>'", bad_request=True)
    else:
        token = value.strip()
    if not _B64TOKEN.fullmatch(token):
        return Deny(Reason.MALFORMED, "the token contains characters a bearer token cannot have", bad_request=True)
    return token


def _b64(segment: str) -> bytes:
    return base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)


def _json_object(segment: str) -> dict[str, Any] | None:
    try:
        value = json.loads(_b64(segment))
    except (ValueError, binascii.Error, RecursionError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def verify(token: str, keys: Mapping[str, VerifyKey] | None, policy: Policy, now: float) -> Principal | Deny:
    """Verify an access token: structure, algorithm, signature, ``typ``, claims. Pure."""
    if len(token) > policy.max_token_bytes:
        return Deny(Reason.MALFORMED, "the token is too long")
    parts = token.split(".")
    if len(parts) != 3:
        return Deny(Reason.MALFORMED, "the token is not a signed JWT")
    header = _json_object(parts[0])
    if header is None:
        return Deny(Reason.MALFORMED, "the token header is not valid")
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in claims.ASYMMETRIC_ALGORITHMS:
        return Deny(Reason.SIGNATURE, "the token's algorithm is not accepted")
    if keys is None:
        return Deny(Reason.KEYS_UNAVAILABLE, "verification keys are unavailable")
    if not isinstance(kid, str) or not kid:
        return Deny(Reason.UNKNOWN_KID, "the token names no key")
    key = keys.get(kid)
    if key is None:
        return Deny(Reason.UNKNOWN_KID, "the token's key is unknown")
    if key.alg != alg:
        return Deny(Reason.SIGNATURE, "the token's algorithm does not match its key")
    try:
        signature = _b64(parts[2])
        valid = key.algorithm.verify(f"{parts[0]}.{parts[1]}".encode("ascii"), key.key, signature)
    except (ValueError, binascii.Error, TypeError):
        valid = False
    if not valid:
        return Deny(Reason.SIGNATURE, "the token's signature is invalid")
    # Only now, with the signature proven, are the claims worth reading.
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCESS_TYPS:
        return Deny(Reason.TOKEN_TYPE, "the token is not an access token")
    payload = _json_object(parts[1])
    if payload is None:
        return Deny(Reason.MALFORMED, "the token's claims are not valid")
    jti = payload.get("jti")
    jti = jti if isinstance(jti, str) else ""
    if payload.get(claims.TOKEN_USAGE) != claims.ACCESS_TOKEN:
        return Deny(Reason.TOKEN_TYPE, "the token is not an access token", jti=jti[:128])
    return _check_claims(payload, jti, kid, policy, now)


def _check_claims(payload: dict[str, Any], jti: str, kid: str, policy: Policy, now: float) -> Principal | Deny:
    if payload.get("iss") != policy.issuer:
        return Deny(Reason.ISSUER, "the token was issued by another issuer", jti=jti[:128])
    aud = payload.get("aud")
    audiences: Sequence[Any] = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else ()
    if not any(a in policy.audiences for a in audiences if isinstance(a, str)):
        return Deny(Reason.AUDIENCE, "the token is not meant for this audience", jti=jti[:128])
    exp, nbf = payload.get("exp"), payload.get("nbf")
    if not _number(exp):
        return Deny(Reason.MALFORMED, "the token has no valid exp claim", jti=jti[:128])
    if now > exp + policy.leeway_s:
        return Deny(Reason.EXPIRED, "the token expired", jti=jti[:128])
    if nbf is not None and (not _number(nbf) or now + policy.leeway_s < nbf):
        return Deny(Reason.NOT_YET_VALID, "the token is not valid yet", jti=jti[:128])
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub or not jti:
        return Deny(Reason.MALFORMED, "the token lacks sub or jti", jti=jti[:128])
    namespace = payload.get(claims.NAMESPACE, "")
    iat = payload.get("iat")
    client_id = payload.get(claims.CLIENT_ID, "")
    return Principal(
        identity=sub,
        namespace=namespace if isinstance(namespace, str) else "",
        scopes=frozenset(s for s in scopes.from_claims(payload) if scopes.is_valid_scope(s)),
        jti=jti,
        kid=kid,
        client_id=client_id if isinstance(client_id, str) else "",
        # No iat: treat as issued at the epoch, so every cut-off covers it (fail closed).
        iat=float(iat) if _number(iat) else 0.0,
        exp=float(exp),
    )


def revoked(principal: Principal, reason: int | None) -> Deny | None:
    """The deny for a revocation ``reason`` found for ``principal`` (None: not revoked)."""
    if reason is None:
        return None
    description = DESCRIPTIONS.get(reason, DESCRIPTIONS[RevocationReason.REVOCATION_REASON_UNSPECIFIED])
    return Deny(Reason.REVOKED, description, jti=principal.jti, revocation=reason)


def insufficient(principal: Principal, rule: Rule) -> Deny | None:
    """The deny when the token's scopes satisfy no alternative of ``rule`` (None: satisfied)."""
    if rule.satisfied_by(principal.scopes):
        return None
    return Deny(
        Reason.INSUFFICIENT_SCOPE,
        f"the token lacks the scopes this route requires: {rule.describe()}",
        needed=rule.needed(principal.scopes),
        jti=principal.jti,
    )
