"""A cluster issuer's public keys: fetched (OIDC discovery or a JWKS URI) or read (a file), cached.

Keys are used for ``jwks_max_age_s`` after they were fetched and refetched in the background of
a request after a quarter of it; an assertion naming a ``kid`` not in the set triggers a refetch
at once, at most every ``jwks_refetch_interval_s`` (a flood of made-up kids costs one fetch per
interval, not one per request). A failed fetch keeps the keys until their age runs out; then
every assertion of the issuer is refused (``jwks_unavailable``): closed, never open.

Only RS256 and ES256 keys are kept (what kube-apiserver signs with); anything else in the set
(``use: enc``, other key types) is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, Final

import jwt

from native_iam.jws import parse_json
from token_service.federation.trust import ClusterIssuer

__all__ = ["ALGORITHMS", "IssuerKeys", "KeysUnavailable", "parse_jwks"]

log = logging.getLogger(__name__)

#: Algorithms accepted for service-account tokens (kube-apiserver signs RS256, or ES256 with an EC key).
ALGORITHMS: Final = ("RS256", "ES256")
#: Largest discovery document or JWK Set read.
MAX_DOCUMENT_BYTES: Final = 1 << 20
#: Seconds one HTTP fetch may take.
FETCH_TIMEOUT_S: Final = 5.0

Key = tuple[str, Any]
Fetch = Callable[[str], Awaitable[bytes]]


class KeysUnavailable(Exception):
    """The issuer's keys could not be fetched (and no usable copy is cached)."""


def parse_jwks(document: bytes) -> dict[str, Key]:
    """``kid`` → (algorithm, public key) of the usable keys in a JWK Set; ValueError if not a set."""
    jwks = parse_json(document)
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise ValueError("not a JWK Set")
    keys: dict[str, Key] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or entry.get("use", "sig") != "sig":
            continue
        try:
            jwk = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        if jwk.algorithm_name in ALGORITHMS and not hasattr(jwk.key, "private_bytes"):
            keys[entry["kid"]] = (jwk.algorithm_name, jwk.key)
    return keys


def _https_context(issuer: ClusterIssuer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(issuer.ca_file) if issuer.ca_file else None)


def http_fetcher(issuer: ClusterIssuer) -> Fetch:
    """GET a URL (off the event loop; size- and time-bounded; redirects not followed)."""
    context = _https_context(issuer)

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect)

    def get(url: str) -> bytes:
        if not url.startswith(("https://", "http://")):  # never file: or other schemes
            raise ValueError("not an http(s) URL")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked
        with opener.open(request, timeout=FETCH_TIMEOUT_S) as response:
            body: bytes = response.read(MAX_DOCUMENT_BYTES + 1)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError("document too large")
        return body

    async def fetch(url: str) -> bytes:
        return await asyncio.to_thread(get, url)

    return fetch


class IssuerKeys:
    """The cached key set of one cluster issuer."""

    def __init__(
        self, issuer: ClusterIssuer, fetch: Fetch | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.issuer = issuer
        self.fetch = fetch or http_fetcher(issuer)
        self.clock = clock
        self.keys: dict[str, Key] = {}
        self.fetched_at: float | None = None
        self.last_attempt: float | None = None
        #: How many times the keys were (re)loaded; tests read it.
        self.loads = 0
        self._lock = asyncio.Lock()

    def _fresh(self, now: float) -> bool:
        return self.fetched_at is not None and now - self.fetched_at < self.issuer.jwks_max_age_s / 4

    def _usable(self, now: float) -> bool:
        return self.fetched_at is not None and now - self.fetched_at < self.issuer.jwks_max_age_s

    async def current(self) -> dict[str, Key]:
        """The keys to verify with now (refetched when due); KeysUnavailable when none are usable."""
        if not self._fresh(self.clock()):
            await self._reload(force=False)
        if not self._usable(self.clock()):
            raise KeysUnavailable(f"the keys of {self.issuer.issuer} are unavailable")
        return self.keys

    async def after_unknown_kid(self, kid: str) -> dict[str, Key]:
        """The keys after a refetch for ``kid`` (rate-limited: maybe the cached ones)."""
        if kid not in self.keys:
            await self._reload(force=True)
        return await self.current()

    async def _reload(self, *, force: bool) -> None:
        async with self._lock:  # one fetch at a time; the waiters use its result
            now = self.clock()
            if not force and self._fresh(now):
                return
            # At most one fetch per interval, whatever asks: an unknown kid, or an issuer that is down.
            if self.last_attempt is not None and now - self.last_attempt < self.issuer.jwks_refetch_interval_s:
                return
            self.last_attempt = now
            try:
                keys = parse_jwks(await self._document())
            except Exception as exc:  # any failure to get keys: keep the old ones, fail closed later
                log.warning(
                    "cluster issuer keys not loaded", extra={"issuer": self.issuer.issuer, "error": str(exc)[:200]}
                )
                return
            self.keys, self.fetched_at = keys, self.clock()
            self.loads += 1

    async def _document(self) -> bytes:
        issuer = self.issuer
        if issuer.jwks_file is not None:
            return await asyncio.to_thread(issuer.jwks_file.read_bytes)
        uri = issuer.jwks_uri
        if uri is None:
            assert issuer.discovery_url is not None  # trust.py sets one of the three
            discovery = parse_json(await self.fetch(issuer.discovery_url))
            # OpenID Connect Discovery §4.3: the document must name exactly this issuer.
            if discovery.get("issuer") != issuer.issuer or not isinstance(discovery.get("jwks_uri"), str):
                raise ValueError("the discovery document names another issuer or no jwks_uri")
            uri = discovery["jwks_uri"]
            if not uri.startswith(("https://", "http://")):
                raise ValueError("jwks_uri is not an http(s) URL")
        return await self.fetch(uri)
