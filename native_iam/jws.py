"""The one compact-JWS access/refresh-token verifier, shared by the sidecar and the token service.

Both enforcement points (the sidecar's ``Check`` and the token service's ``CheckAccess``) call
:func:`verify`, so a token is either accepted by both or refused by both; only the policy they
pass differs (the sidecar's accepted audiences and clock leeway; the token service names no
audience, since ``CheckAccessRequest`` carries none). Every rule lives here once:

* **Encoding** (RFC 7515 §2, §7.1): exactly three segments of canonical base64url — only the
  ``A-Z a-z 0-9 - _`` alphabet, no ``=`` padding, no impossible length, and zero unused trailing
  bits, so each token has exactly one spelling. JSON is UTF-8, an object, without duplicate
  member names (RFC 7515 §5.2 allows refusing them; refusing is safer than picking one) and
  without the ``NaN``/``Infinity`` literals Python's json module would otherwise accept.
* **Header**: ``alg`` must be one the caller allows *and* the algorithm of the key named by
  ``kid`` (the key's type decides, never the token: no ``none``, no HMAC with a public key);
  ``crit`` is refused whatever it lists (RFC 7515 §4.1.11: we understand no extension);
  ``typ`` is compared case-insensitively with an optional ``application/`` prefix (RFC 7515
  §4.1.9, RFC 9068 §4) and must match ``token_usage``. ``jku``/``x5u``/``jwk``/``x5c`` are never
  used (keys come only from the caller's key set).
* **Claims** (checked only after the signature): ``exp`` and ``iat`` required, ``nbf``
  optional (default ``iat``), each an integer JSON number in [0, 2**53) — no fraction, no
  exponent, no bool, no string; ``iss`` equal to the issuer; ``aud`` a non-empty string or a
  non-empty list of them; ``sub``, ``jti`` (at most 64 characters) non-empty printable strings;
  ``client_id``, ``namespace``, ``fam`` printable strings when present; ``scope`` a string and
  ``scp`` a list of strings (or a string) when present; ``sub_kind`` absent (an identity) or
  ``"client"`` with ``sub`` equal to ``client_id`` and no ``namespace`` (a client's own token),
  so a client can never pass for an identity of the same name. ``null`` is never "absent": it is the
  wrong type. A token is valid from ``nbf - leeway`` (inclusive) until ``exp + leeway``
  (exclusive; RFC 7519 §4.1.4: "before" exp).

Speed: no PyJWT decode (its per-character base64 checks cost as much as ES256 itself); the
signature is checked by PyJWT's algorithm objects (cryptography underneath).
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import get_default_algorithms

from native_iam import claims as names
from native_iam import scopes as scope_rules
from native_iam.limits import MAX_CLAIM_LENGTH, MAX_JTI_LENGTH

__all__ = [
    "Failure",
    "IdTokenHint",
    "JwsError",
    "KeyLookup",
    "Rules",
    "Signed",
    "Verified",
    "audience_claim",
    "b64decode",
    "is_numeric_date",
    "is_text",
    "parse_json",
    "typ_usage",
    "unverified",
    "verify",
    "verify_id_token_hint",
    "verify_signature",
]

#: NumericDate values must lie in [0, 2**53): integers a JSON double represents exactly.
_MAX_NUMERIC_DATE = 2**53

_ALGORITHMS = {name: get_default_algorithms()[name] for name in names.ALL_ALGORITHMS}
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_B64_VALUE = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
# typ (lower-cased, without "application/") → the token_usage that must go with it.
_USAGE_FOR_TYP = {names.ACCESS_TOKEN_TYP: names.ACCESS_TOKEN, names.REFRESH_TOKEN_TYP: names.REFRESH_TOKEN}


class Failure(enum.StrEnum):
    """Why a token was refused. Values equal the sidecar's deny reasons of the same name."""

    MALFORMED = "malformed"
    SIGNATURE = "signature"
    UNKNOWN_KID = "unknown_kid"
    KEYS_UNAVAILABLE = "keys_unavailable"
    TOKEN_TYPE = "token_type"
    ISSUER = "issuer"
    AUDIENCE = "audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


class JwsError(Exception):
    """A refused token: ``failure`` says why, ``message`` is safe to show (never the token)."""

    def __init__(self, failure: Failure, message: str, jti: str = "") -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message
        self.jti = jti  # for logs and deny metadata; set once the signature is proven


@dataclass(frozen=True, slots=True)
class Rules:
    """What the caller accepts. ``audiences`` None: any well-formed ``aud`` (the token service's
    CheckAccess, which is asked on behalf of no particular audience)."""

    issuer: str
    audiences: Collection[str] | None
    leeway_s: float
    max_token_bytes: int
    algorithms: Collection[str] = names.ASYMMETRIC_ALGORITHMS
    #: The token_usage required; None: access or refresh token (the caller checks which).
    usage: str | None = names.ACCESS_TOKEN


@dataclass(frozen=True, slots=True)
class Verified:
    """The claims of a token that passed every rule, with their types guaranteed."""

    kid: str
    usage: str
    sub: str
    jti: str
    audience: tuple[str, ...]
    scopes: frozenset[str]
    client_id: str
    namespace: str
    iat: int
    nbf: int
    exp: int
    family: str | None
    #: :data:`~native_iam.claims.IDENTITY_PRINCIPAL` or :data:`~native_iam.claims.CLIENT_PRINCIPAL`
    #: (``sub`` is then the client id, equal to ``client_id``).
    principal: str = names.IDENTITY_PRINCIPAL


#: ``kid`` → (the key's algorithm, the prepared verification key), or None when unknown.
KeyLookup = Callable[[str], "tuple[str, Any] | None"]


def b64decode(segment: str) -> bytes:
    """Canonical base64url (RFC 7515 §2): the URL-safe alphabet only, no padding, and zero unused
    bits in the last character. Raises ValueError otherwise."""
    if not _SEGMENT.fullmatch(segment):
        raise ValueError("not base64url")
    rest = len(segment) % 4
    if rest == 1:
        raise ValueError("impossible base64url length")
    # 2 trailing chars carry 1 byte (4 spare bits), 3 carry 2 bytes (2 spare bits).
    if rest and _B64_VALUE[segment[-1]] & (0x0F if rest == 2 else 0x03):
        raise ValueError("non-canonical base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-rest % 4))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_reject_constant)


def parse_json(data: bytes) -> dict[str, Any]:
    """A JOSE header or claim set: a UTF-8 JSON object, no duplicate names, no NaN/Infinity.
    Raises ValueError otherwise."""
    try:
        value = _DECODER.decode(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("too deeply nested") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _segment_json(segment: str, what: str) -> dict[str, Any]:
    try:
        return parse_json(b64decode(segment))
    except ValueError:  # includes UnicodeDecodeError, json.JSONDecodeError and binascii.Error
        raise JwsError(Failure.MALFORMED, f"the token's {what} is not valid") from None


def typ_usage(typ: Any) -> str | None:
    """The token_usage a ``typ`` header stands for (None: not one of ours). RFC 7515 §4.1.9:
    media types are case-insensitive and "application/" may be omitted."""
    if not isinstance(typ, str):
        return None
    return _USAGE_FOR_TYP.get(typ.lower().removeprefix("application/"))


@dataclass(frozen=True, slots=True)
class Signed:
    """A compact JWS whose encoding, header and signature passed (:func:`verify_signature`);
    nothing about its claims is checked yet."""

    header: dict[str, Any]
    payload: dict[str, Any]
    kid: str
    alg: str


def verify_signature(token: str, keys: KeyLookup | None, algorithms: Collection[str], max_token_bytes: int) -> Signed:
    """The encoding, header and signature rules of the module docstring, for any JWS: this
    service's tokens (:func:`verify`) and other issuers' (Kubernetes service-account tokens
    presented as client assertions). Raises :class:`JwsError`."""
    if len(token) > max_token_bytes:
        raise JwsError(Failure.MALFORMED, "the token is too long")
    parts = token.split(".")
    if len(parts) != 3 or not token.isascii():
        raise JwsError(Failure.MALFORMED, "the token is not a signed JWT")
    header = _segment_json(parts[0], "header")
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in algorithms:
        raise JwsError(Failure.SIGNATURE, "the token's algorithm is not accepted")
    if "crit" in header:  # RFC 7515 §4.1.11: we understand no extension, so none may be critical
        raise JwsError(Failure.MALFORMED, "the token names critical extensions")
    if keys is None:
        raise JwsError(Failure.KEYS_UNAVAILABLE, "verification keys are unavailable")
    if not isinstance(kid, str) or not kid:
        raise JwsError(Failure.UNKNOWN_KID, "the token names no key")
    key = keys(kid)
    if key is None:
        raise JwsError(Failure.UNKNOWN_KID, "the token's key is unknown")
    if key[0] != alg:  # the key's type decides the algorithm, never the token alone
        raise JwsError(Failure.SIGNATURE, "the token's algorithm does not match its key")
    _check_signature(parts, alg, key[1])
    # Only now, with the signature proven, are the claims worth reading.
    return Signed(header, _segment_json(parts[1], "claims"), kid, alg)


def unverified(token: str, max_token_bytes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS *without* any check but their encoding: only to
    pick whose keys verify it (:func:`verify_signature` must follow). Raises :class:`JwsError`."""
    parts = token.split(".") if len(token) <= max_token_bytes and token.isascii() else []
    if len(parts) != 3:
        raise JwsError(Failure.MALFORMED, "the token is not a signed JWT")
    return _segment_json(parts[0], "header"), _segment_json(parts[1], "claims")


def verify(token: str, keys: KeyLookup | None, rules: Rules, now: float) -> Verified:
    """Verify a compact JWS token; return its claims or raise :class:`JwsError`.

    ``keys`` None means no key set is usable (the sidecar's keys are too old): well-formed
    tokens are then refused with ``KEYS_UNAVAILABLE``.
    """
    signed = verify_signature(token, keys, rules.algorithms, rules.max_token_bytes)
    typ = typ_usage(signed.header.get("typ"))
    if typ is None or (rules.usage is not None and typ != rules.usage):
        raise JwsError(Failure.TOKEN_TYPE, "the token's type is not accepted")
    payload = signed.payload
    jti = payload.get("jti")
    jti = jti if is_text(jti, max_length=MAX_JTI_LENGTH) else ""  # "" : no valid jti (refused below)
    if payload.get(names.TOKEN_USAGE) != typ:
        raise JwsError(Failure.TOKEN_TYPE, "the token's type and usage disagree", jti)
    return _claims(payload, signed.kid, typ, jti, rules, now)


@dataclass(frozen=True, slots=True)
class IdTokenHint:
    """The claims of an ID token presented back to its issuer (OpenID Connect ``id_token_hint``)."""

    sub: str
    audience: tuple[str, ...]
    namespace: str
    exp: int


def verify_id_token_hint(
    token: str, keys: KeyLookup | None, *, issuer: str, algorithms: Collection[str], max_token_bytes: int
) -> IdTokenHint:
    """An ID token we issued (OpenID Connect Core §2): encoding, header and signature by the rules
    of :func:`verify_signature`; ``typ`` ``JWT`` and *no* ``token_usage`` (an access or refresh
    token is not an ID token); ``iss``, ``aud``, ``sub``, ``exp`` well-formed. Expiry is deliberately
    not checked: RP-Initiated Logout §2 accepts an expired ``id_token_hint``. Raises :class:`JwsError`.
    """
    signed = verify_signature(token, keys, algorithms, max_token_bytes)
    typ, payload = signed.header.get("typ"), signed.payload
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != "jwt":
        raise JwsError(Failure.TOKEN_TYPE, "the token is not an ID token")
    if names.TOKEN_USAGE in payload:
        raise JwsError(Failure.TOKEN_TYPE, "the token is not an ID token")
    if payload.get("iss") != issuer:
        raise JwsError(Failure.ISSUER, "the token was issued by another issuer")
    audience = audience_claim(payload.get("aud"))
    sub, namespace, exp = payload.get("sub"), payload.get(names.NAMESPACE, ""), payload.get("exp")
    if audience is None or not is_text(sub) or not is_text(namespace, required=False) or not is_numeric_date(exp):
        raise JwsError(Failure.MALFORMED, "the ID token lacks sub, aud or exp, or has malformed claims")
    return IdTokenHint(sub=sub, audience=audience, namespace=namespace, exp=exp)


def _check_signature(parts: list[str], alg: str, key: Any) -> None:
    try:
        signature = b64decode(parts[2])
        valid = _ALGORITHMS[alg].verify(f"{parts[0]}.{parts[1]}".encode("ascii"), key, signature)
    except (ValueError, TypeError, binascii.Error):  # non-canonical encoding, wrong length…
        valid = False
    if not valid:
        raise JwsError(Failure.SIGNATURE, "the token's signature is invalid")


def is_text(value: Any, *, required: bool = True, max_length: int = MAX_CLAIM_LENGTH) -> bool:
    """A printable string (so it is valid UTF-8 and safe in a header); non-empty when required."""
    return isinstance(value, str) and (bool(value) or not required) and len(value) <= max_length and value.isprintable()


def is_numeric_date(value: Any) -> bool:
    """An integer NumericDate in [0, 2**53) (no fraction, exponent, bool or string)."""
    return type(value) is int and 0 <= value < _MAX_NUMERIC_DATE


def audience_claim(value: Any) -> tuple[str, ...] | None:
    """``aud`` as a tuple: a non-empty string or non-empty list of them; None when malformed."""
    audience = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, list) else ()
    if not audience or not all(is_text(a) for a in audience):
        return None
    return audience


def _scopes(payload: dict[str, Any]) -> frozenset[str] | None:
    """``scope`` (space-delimited) and ``scp`` (array or string) together; invalid scope-tokens
    are dropped (they can match no requirement); a claim of the wrong type is None (malformed)."""
    scope, scp = payload.get(names.SCOPE, ""), payload.get(names.SCP, [])
    if isinstance(scp, str):
        scp = scp.split(" ")
    if not isinstance(scope, str) or not isinstance(scp, list) or not all(isinstance(s, str) for s in scp):
        return None
    return frozenset(s for s in (*scope.split(" "), *scp) if scope_rules.is_valid_scope(s))


def _claims(payload: dict[str, Any], kid: str, usage: str, jti: str, rules: Rules, now: float) -> Verified:
    if payload.get("iss") != rules.issuer:
        raise JwsError(Failure.ISSUER, "the token was issued by another issuer", jti)
    audience = audience_claim(payload.get("aud"))
    if audience is None or (rules.audiences is not None and not any(a in rules.audiences for a in audience)):
        raise JwsError(Failure.AUDIENCE, "the token is not meant for this audience", jti)
    exp, iat = payload.get("exp"), payload.get("iat")
    nbf = payload.get("nbf", iat)
    if not (is_numeric_date(exp) and is_numeric_date(iat) and is_numeric_date(nbf)):
        raise JwsError(Failure.MALFORMED, "the token's exp, nbf or iat is not a valid NumericDate", jti)
    sub, client_id = payload.get("sub"), payload.get(names.CLIENT_ID, "")
    namespace, family = payload.get(names.NAMESPACE, ""), payload.get(names.FAMILY)
    scopes = _scopes(payload)
    if not (
        is_text(sub)
        and jti
        and is_text(client_id, required=False)
        and is_text(namespace, required=False)
        and (family is None or is_text(family))
        and scopes is not None
    ):
        raise JwsError(Failure.MALFORMED, "the token lacks sub or jti, or has malformed claims", jti)
    principal = _principal(payload, sub, client_id, namespace)
    if principal is None:
        raise JwsError(Failure.MALFORMED, "the token's sub_kind is malformed", jti)
    if now >= exp + rules.leeway_s:
        raise JwsError(Failure.EXPIRED, "the token expired", jti)
    if now + rules.leeway_s < nbf:
        raise JwsError(Failure.NOT_YET_VALID, "the token is not valid yet", jti)
    return Verified(
        kid=kid,
        usage=usage,
        sub=sub,
        jti=jti,
        audience=audience,
        scopes=scopes,
        client_id=client_id,
        namespace=namespace,
        iat=iat,
        nbf=nbf,
        exp=exp,
        family=family,
        principal=principal,
    )


def _principal(payload: dict[str, Any], sub: str, client_id: str, namespace: str) -> str | None:
    """Who ``sub`` names (claims.SUB_KIND); None when malformed: an unknown kind, or a client
    token whose ``sub`` is not its ``client_id`` or that names a namespace (fail closed)."""
    if names.SUB_KIND not in payload:  # null is not "absent": the wrong type
        return names.IDENTITY_PRINCIPAL
    kind = payload[names.SUB_KIND]
    if kind == names.CLIENT_PRINCIPAL and sub == client_id and not namespace:
        return names.CLIENT_PRINCIPAL
    return None
