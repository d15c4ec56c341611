"""The decision, as pure functions: a bearer token + keys + revocations + a rule → allow or deny.

Nothing here does I/O, logs or reads the clock: the caller passes ``now``. Every deny carries a
:class:`Reason` (low cardinality: it labels a metric) and a human description that never contains
the token. :data:`OUTCOMES` is the one table from reason to HTTP status, RFC 6750 error code and
the seed's ``CheckAccess`` status.
"""

from __future__ import annotations

import enum
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from google.rpc import code_pb2

from native_iam import bearer, claims, jws
from native_iam.oauth.v1 import oauth_pb2
from native_iam.revocation_subjects import names_identity

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
    ROUTE_UNMATCHED = "route_unmatched"
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
    # A route table is configured and nothing describes this request: closed to everyone, token or
    # not. RFC 6750's 403 code, without scope="…": no scope opens it.
    Reason.ROUTE_UNMATCHED: Outcome(403, "insufficient_scope", CheckStatus.UNAUTHORIZED, code_pb2.PERMISSION_DENIED),
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
    RevocationReason.AUTHORIZATION_CODE_REUSE: CheckStatus.TOKEN_DISABLED,
    RevocationReason.CLIENT_DISABLED: CheckStatus.TOKEN_DISABLED,
    RevocationReason.CLIENT_DELETED: CheckStatus.TOKEN_NOT_FOUND,
}


@dataclass(frozen=True, slots=True)
class Principal:
    """What a verified access token says. ``identity`` is empty for a client's own token
    (``principal`` CLIENT_PRINCIPAL, client_credentials): ``client_id`` is then the caller."""

    identity: str
    namespace: str
    scopes: frozenset[str]
    jti: str
    kid: str
    client_id: str
    iat: float
    exp: float
    principal: str = claims.IDENTITY_PRINCIPAL


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


def extract_token(value: str | None, *, require_scheme: bool, max_bytes: int) -> str | Deny | None:
    """The token in a header value; None when there is none; a 400 Deny when the header is malformed."""
    try:
        return bearer.token_from(value, max_bytes=max_bytes, require_scheme=require_scheme)
    except bearer.MalformedHeader as exc:
        return Deny(Reason.MALFORMED, str(exc), bad_request=True)


def bare_token(value: str, *, max_bytes: int) -> str | Deny | None:
    """A token passed as such (``CheckAccessRequest.access_token``): None when empty; a 400 Deny
    when longer than ``max_bytes`` in UTF-8 (the whole field is the token: a malformed request)."""
    if not value:
        return None
    if len(value) > max_bytes or (not value.isascii() and len(value.encode()) > max_bytes):
        return Deny(Reason.MALFORMED, "the token is too long", bad_request=True)
    return value


class _Retired(Exception):
    """Raised by the key lookup for a retired kid, out of :func:`native_iam.jws.verify`."""


# A retired key's token: revoked (not an unknown kid, which would trigger a JWKS refetch).
_RETIRED_KEY = Deny(Reason.REVOKED, DESCRIPTIONS[RevocationReason.KEY_RETIRED], revocation=RevocationReason.KEY_RETIRED)


def _key_lookup(keys: Mapping[str, VerifyKey], retired: Container[str]) -> jws.KeyLookup:
    def find(kid: str) -> tuple[str, Any] | None:
        if kid in retired:
            raise _Retired  # even when a stale key set still holds it
        key = keys.get(kid)
        return None if key is None else (key.alg, key.key)

    return find


def verify(
    token: str,
    keys: Mapping[str, VerifyKey] | None,
    policy: Policy,
    now: float,
    retired: Container[str] = frozenset(),
) -> Principal | Deny:
    """Verify an access token with the one shared verifier (native_iam.jws). Pure.

    ``retired``: kids the feed said were retired; their tokens are refused whatever they claim.
    """
    rules = jws.Rules(policy.issuer, policy.audiences, policy.leeway_s, policy.max_token_bytes)
    try:
        v = jws.verify(token, None if keys is None else _key_lookup(keys, retired), rules, now)
    except jws.JwsError as exc:
        return Deny(Reason(exc.failure.value), exc.message, jti=exc.jti)
    except _Retired:
        return _RETIRED_KEY
    return Principal(
        # A client's sub is a client id: never an identity name, whatever it spells.
        identity=v.sub if names_identity(v.principal) else "",
        namespace=v.namespace,
        scopes=v.scopes,
        jti=v.jti,
        kid=v.kid,
        client_id=v.client_id,
        iat=float(v.iat),
        exp=float(v.exp),
        principal=v.principal,
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
