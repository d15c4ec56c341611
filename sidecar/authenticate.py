"""The sidecar's one authentication path: a credential → the verified principal, or a :class:`Deny`.

Both enforcement points a workload can reach — the ext_authz ``Check`` (sidecar/authorization.py)
and the OAuth facade's local ``CheckAccess`` (sidecar/oauth_facade.py) — call
:meth:`Authenticator.authenticate`, so one token gets one verdict; each caller only maps the
result to its own answer (a ``CheckResponse``, a seed ``CheckAccessResponse`` status). In order:

1. revocation-feed freshness (a stale feed could hide a revocation);
2. the decision cache (keyed by the credential as received: a hit skips even header parsing);
3. reading the token, with the size limit (``NATIVE_IAM_MAX_TOKEN_BYTES``);
4. verification (:func:`sidecar.decision.verify`, i.e. :mod:`native_iam.jws`);
5. on an unknown ``kid``: one single-flight, rate-limited JWKS refetch, waited for briefly;
6. revocation lookup;
7. caching the allowed principal (with the caller's prebuilt allow response).

Speed: a cached credential costs two freshness reads, one dict lookup and a counter increment.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from typing import Any

from . import decision
from .decision import Deny, Policy, Principal, Reason
from .decision_cache import DecisionCache, Entry
from .keys import KeyStore
from .metrics import Metrics
from .revocations import RevocationCache
from .settings import Settings

log = logging.getLogger("sidecar.authenticate")

__all__ = ["NEED_REFETCH", "REFETCH_WAIT_S", "Authenticator", "Credential", "Entry"]

# Envoy gives the whole Check 0.5 s in the example config; a JWKS fetch on the same network takes
# milliseconds. Waiting longer would only turn a deny into an Envoy timeout.
REFETCH_WAIT_S = 0.3

_FEED_STALE = Deny(Reason.FEED_STALE, "the revocation feed is stale; retry later")
_MISSING = Deny(Reason.MISSING, "an access token is required")


class Credential(enum.Enum):
    """What the caller hands :meth:`Authenticator.authenticate`."""

    #: An ``Authorization`` header value: ``Bearer <token>`` (RFC 6750 §2.1).
    AUTHORIZATION = "authorization"
    #: A custom token header: ``Bearer <token>`` or the bare token.
    HEADER = "header"
    #: The token itself (``CheckAccessRequest.access_token``).
    TOKEN = "token"


class _NeedRefetch:
    """The verdict was unknown_kid before any refetch: refetch the JWKS, then decide again."""


#: :meth:`Authenticator.attempt`'s answer for an unknown ``kid`` before any refetch.
NEED_REFETCH = _NeedRefetch()


class _NoCount:
    def inc(self) -> None:
        pass


def _no_response(principal: Principal) -> None:
    return None


class Authenticator:
    """Authenticates credentials of one :class:`Credential` kind with its own decision cache.

    Callers taking different kinds use separate instances: a cache keyed by header values
    (``Bearer …``) must never answer a lookup for a bare token of the same spelling.
    """

    def __init__(
        self,
        settings: Settings,
        keys: KeyStore,
        revocations: RevocationCache,
        *,
        credential: Credential,
        metrics: Metrics | None = None,
        render: Callable[[Principal], Any] = _no_response,
        cache: DecisionCache | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._revocations = revocations
        self._read = _reader(credential, settings.max_token_bytes)
        self._policy = Policy(settings.issuer, settings.audiences, settings.leeway_s, settings.max_token_bytes)
        self._open_when_stale = settings.feed_stale_policy == "open"
        self._render = render
        if cache is None:  # not `cache or …`: an empty DecisionCache is falsy (it has __len__)
            cache = DecisionCache(max_entries=settings.decision_cache_size, ttl_s=settings.decision_cache_ttl_s)
        self._cache = cache
        self._now = wall_clock
        # Cache hits and misses are the ext_authz decision-cache metric; other callers count nothing.
        self._hit: Any = metrics.hit if metrics is not None else _NoCount()
        self._miss: Any = metrics.miss if metrics is not None else _NoCount()

    def authenticate(self, credential: str) -> Entry | Deny:
        """Decide ``credential``, blocking up to :data:`REFETCH_WAIT_S` for an unknown-kid refetch."""
        result = self.attempt(credential)
        if result is NEED_REFETCH:
            self.wait_for_keys()
            result = self.attempt(credential, refetched=True)
        return result  # type: ignore[return-value]

    async def authenticate_async(self, credential: str) -> Entry | Deny:
        """:meth:`authenticate` for an event loop: the refetch wait never blocks the loop."""
        result = self.attempt(credential)
        if result is NEED_REFETCH:
            await self.wait_for_keys_async()
            result = self.attempt(credential, refetched=True)
        return result  # type: ignore[return-value]

    def wait_for_keys(self) -> None:
        """After :data:`NEED_REFETCH`: start (or join) the JWKS refetch, wait for it briefly."""
        try:
            self._keys.refetch().result(timeout=REFETCH_WAIT_S)
        except Exception:  # timeout or fetch error: decide with what we have
            log.debug("jwks refetch wait failed")

    async def wait_for_keys_async(self) -> None:
        """:meth:`wait_for_keys` without blocking the event loop."""
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._keys.refetch()), REFETCH_WAIT_S)
        except Exception:
            log.debug("jwks refetch wait failed")

    def attempt(self, credential: str, refetched: bool = False) -> Entry | Deny | _NeedRefetch:
        """Decide ``credential`` without waiting: :data:`NEED_REFETCH` when its ``kid`` is unknown
        and no refetch was tried yet (then :meth:`wait_for_keys` and attempt again, refetched)."""
        revocations = self._revocations
        if not revocations.fresh() and not (self._open_when_stale and revocations.synced):
            return _FEED_STALE
        # Read the epoch before verifying: a revocation applied meanwhile moves it, so the entry
        # stored below can never outlive that revocation.
        keys = self._keys
        epoch = keys.generation + revocations.generation
        # Keys past their maximum age void cached allows too (verification then says why).
        entry = self._cache.get(credential, epoch) if keys.usable() is not None else None
        if entry is not None:
            self._hit.inc()
            return entry
        self._miss.inc()
        token = self._read(credential)
        if token is None:
            return _MISSING
        if isinstance(token, Deny):
            return token
        now = self._now()
        verified = decision.verify(token, keys.usable(), self._policy, now, keys.retired)
        if isinstance(verified, Deny):
            if verified.reason is Reason.UNKNOWN_KID and not refetched:
                return NEED_REFETCH
            return verified
        principal = verified
        deny = decision.revoked(
            principal,
            revocations.lookup(
                jti=principal.jti,
                identity=principal.identity,
                namespace=principal.namespace,
                kid=principal.kid,
                iat=principal.iat,
                client_id=principal.client_id,
                principal=principal.principal,
            ),
        )
        if deny is not None:
            return deny
        entry = Entry(principal, self._render(principal))
        self._cache.put(credential, principal, epoch, entry.response, now)
        return entry


def _reader(credential: Credential, max_bytes: int) -> Callable[[str], str | Deny | None]:
    """The token in a credential of this kind: None when it carries none, a Deny when malformed
    (too long included: the size limit is applied here, then again by native_iam.jws)."""
    if credential is Credential.TOKEN:
        return lambda value: decision.bare_token(value, max_bytes=max_bytes)
    require_scheme = credential is Credential.AUTHORIZATION
    return lambda value: decision.extract_token(value, require_scheme=require_scheme, max_bytes=max_bytes)
