"""Kubernetes service-account tokens as client assertions (RFC 7523 §2.2, §3).

:meth:`ClientAssertions.verify` checks, in order (each refusal has its own ``reason``, the label
of ``native_iam_client_assertions_total`` and the field of the log line):

1. encoding (``malformed``), ``iss`` one of the trusted issuers (``untrusted_issuer``), ``alg``
   RS256 or ES256 (``algorithm``: never none, never HS*);
2. ``kid`` in the issuer's JWKS, refetched once on an unknown kid (``unknown_kid``; no usable key
   set: ``jwks_unavailable``), the signature (``signature``) — with :func:`native_iam.jws.verify_signature`,
   the verifier of this service's own tokens;
3. ``aud`` contains the issuer's expected audience (``audience``); ``exp``, ``iat`` present and
   ``nbf`` (default ``iat``) NumericDates; now < exp + skew (``expired``); now ≥ nbf − skew
   (``not_yet_valid``); iat ≤ now + skew (``issued_in_future``); 0 < exp − iat ≤ max lifetime
   (``lifetime``);
4. the Kubernetes claims (``kubernetes_claims``): ``sub`` = ``system:serviceaccount:<ns>:<name>``
   and the ``kubernetes.io`` object agreeing with it (``namespace``; ``serviceaccount`` name and
   uid; ``pod`` and ``node`` name and uid when present), ``jti`` a string when present and
   required when the issuer is single-use;
5. the subject maps to a client (``unknown_service_account``).

:meth:`ClientAssertions.spend` then claims the ``jti`` of a single-use issuer (``replayed`` the
second time, on any replica: :meth:`token_service.shortlived.ShortLived.add`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from native_iam import jws
from native_iam.limits import MAX_JTI_LENGTH, MAX_TOKEN_BYTES
from token_service.errors import InvalidClientAssertion
from token_service.federation.jwks import ALGORITHMS, Fetch, IssuerKeys, KeysUnavailable
from token_service.federation.trust import ClusterIssuer, Trust, service_account
from token_service.shortlived import ShortLived

__all__ = ["JWT_BEARER", "Assertion", "ClientAssertions"]

log = logging.getLogger(__name__)

#: RFC 7523 §2.2 ``client_assertion_type``.
JWT_BEARER: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: ShortLived kind of spent single-use assertion jtis.
JTI_KIND: Final = "jti"
#: Kubernetes' private claim (projected service-account tokens).
KUBERNETES_CLAIM: Final = "kubernetes.io"

_FAILURE_REASON = {
    jws.Failure.MALFORMED: "malformed",
    jws.Failure.SIGNATURE: "signature",
    jws.Failure.UNKNOWN_KID: "unknown_kid",
    jws.Failure.KEYS_UNAVAILABLE: "jwks_unavailable",
}


@dataclass(frozen=True, slots=True)
class Assertion:
    """A verified service-account token and the client it maps to."""

    client_id: str
    issuer: ClusterIssuer
    subject: str
    jti: str | None
    exp: int


def _named_object(value: Any, *, required: bool) -> bool:
    """``{"name": str, "uid": str}`` (as Kubernetes writes pod, node and serviceaccount)."""
    if value is None:
        return not required
    return isinstance(value, dict) and jws.is_text(value.get("name")) and jws.is_text(value.get("uid"))


def _kubernetes_claims(payload: Mapping[str, Any], subject: str) -> bool:
    parsed = service_account(subject)
    k8s = payload.get(KUBERNETES_CLAIM)
    if parsed is None or not isinstance(k8s, dict):
        return False
    namespace, name = parsed
    account = k8s.get("serviceaccount")
    return (
        k8s.get("namespace") == namespace
        and _named_object(account, required=True)
        and account["name"] == name
        and _named_object(k8s.get("pod"), required=False)
        and _named_object(k8s.get("node"), required=False)
    )


class ClientAssertions:
    """Verifies assertions of the trusted cluster issuers; one :class:`IssuerKeys` cache each."""

    def __init__(
        self,
        trust: Trust,
        short_lived: ShortLived,
        *,
        count: Callable[[str], None] | None = None,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.trust = trust
        self.short_lived = short_lived
        self.count = count or (lambda outcome: None)
        self.clock = clock
        self.keys = {iss: IssuerKeys(issuer, fetch) for iss, issuer in trust.issuers.items()}

    def refuse(self, reason: str, message: str, **context: str) -> InvalidClientAssertion:
        """Count and log a refusal; the error to raise (its message is safe for the caller)."""
        self.count(reason)
        log.info("client assertion refused", extra={"reason": reason, **context})
        return InvalidClientAssertion(reason, f"client assertion refused: {message}")

    async def verify(self, token: str) -> Assertion:
        """The assertion's issuer, subject and client, or :class:`InvalidClientAssertion`."""
        try:
            header, unverified = jws.unverified(token, MAX_TOKEN_BYTES)
        except jws.JwsError:
            raise self.refuse("malformed", "not a signed JWT") from None
        issuer = self.trust.issuers.get(unverified.get("iss")) if isinstance(unverified.get("iss"), str) else None
        if issuer is None:
            # The iss is not echoed into logs: it is attacker-chosen and unbounded.
            raise self.refuse("untrusted_issuer", "the issuer is not trusted")
        if header.get("alg") not in ALGORITHMS:
            raise self.refuse("algorithm", "the algorithm is not accepted", issuer=issuer.issuer)
        payload = await self._signed_payload(token, issuer)
        return self._claims(payload, issuer)

    async def _signed_payload(self, token: str, issuer: ClusterIssuer) -> dict[str, Any]:
        keys = self.keys[issuer.issuer]
        for attempt in range(2):
            try:
                current = await (keys.current() if attempt == 0 else keys.after_unknown_kid(self._kid(token)))
                return jws.verify_signature(token, current.get, ALGORITHMS, MAX_TOKEN_BYTES).payload
            except KeysUnavailable:
                raise self.refuse(
                    "jwks_unavailable", "the issuer's keys are unavailable", issuer=issuer.issuer
                ) from None
            except jws.JwsError as exc:
                if exc.failure is jws.Failure.UNKNOWN_KID and attempt == 0:
                    continue  # the cluster may have rotated its key: refetch once (rate-limited)
                reason = _FAILURE_REASON.get(exc.failure, "malformed")
                raise self.refuse(reason, exc.message, issuer=issuer.issuer) from None
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _kid(token: str) -> str:
        kid = jws.unverified(token, MAX_TOKEN_BYTES)[0].get("kid")
        return kid if isinstance(kid, str) else ""

    def _claims(self, payload: dict[str, Any], issuer: ClusterIssuer) -> Assertion:
        context = {"issuer": issuer.issuer}
        audience = jws.audience_claim(payload.get("aud"))
        if audience is None or issuer.audience not in audience:
            raise self.refuse("audience", "the audience is not this token service", **context)
        exp, iat = payload.get("exp"), payload.get("iat")
        nbf = payload.get("nbf", iat)
        if not (jws.is_numeric_date(exp) and jws.is_numeric_date(iat) and jws.is_numeric_date(nbf)):
            raise self.refuse("malformed", "exp, nbf or iat is missing or not a NumericDate", **context)
        now, skew = self.clock(), issuer.clock_skew_s
        if now >= exp + skew:
            raise self.refuse("expired", "the assertion expired", **context)
        if now + skew < nbf:
            raise self.refuse("not_yet_valid", "the assertion is not valid yet", **context)
        if iat > now + skew:
            raise self.refuse("issued_in_future", "the assertion was issued in the future", **context)
        if not 0 < exp - iat <= issuer.max_lifetime_s:
            raise self.refuse("lifetime", "the assertion's lifetime is not accepted", **context)
        subject, jti = payload.get("sub"), payload.get("jti")
        if not (
            isinstance(subject, str)
            and _kubernetes_claims(payload, subject)
            and (jti is None or jws.is_text(jti, max_length=MAX_JTI_LENGTH))
            and (jti is not None or not issuer.single_use)
        ):
            raise self.refuse("kubernetes_claims", "not a Kubernetes service-account token", **context)
        client_id = issuer.client_for(subject)
        if client_id is None:
            raise self.refuse("unknown_service_account", "the service account is not mapped to a client", **context)
        return Assertion(client_id, issuer, subject, jti, exp)

    def accepted(self, assertion: Assertion) -> None:
        """Count an assertion that authenticated its client."""
        self.count("ok")
        log.debug("client assertion accepted", extra={"issuer": assertion.issuer.issuer, "subject": assertion.subject})

    async def spend(self, assertion: Assertion) -> None:
        """Claim a single-use assertion's ``jti`` (atomic across replicas), or ``replayed``.

        Kept until the assertion can no longer be accepted anyway: exp − now + skew.
        """
        if not assertion.issuer.single_use or assertion.jti is None:
            return
        key = hashlib.sha256(f"{assertion.issuer.issuer}\n{assertion.jti}".encode()).hexdigest()
        ttl = max(1.0, assertion.exp - self.clock() + assertion.issuer.clock_skew_s)
        if not await self.short_lived.add(JTI_KIND, key, assertion.client_id, ttl):
            raise self.refuse(
                "replayed", "the assertion was already used", issuer=assertion.issuer.issuer, subject=assertion.subject
            )
