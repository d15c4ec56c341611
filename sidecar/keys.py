"""The JWKS cache: verification keys from Feed.GetJwks (or an HTTP JWKS URL), kept fresh.

Each key's algorithm is derived from its type (EC P-256 → ES256, RSA → RS256, OKP Ed25519 →
EdDSA) and a token must use exactly that algorithm: never ``none``, never HMAC (a published key is
public, so an HMAC "signature" with it proves nothing — the algorithm-confusion attack). Keys
that match none of these are skipped. Last-known-good keys keep verifying through an issuer
outage for at most ``jwks_max_staleness_s`` (NATIVE_IAM_JWKS_MAX_STALENESS_S); after that the
sidecar denies with ``keys_unavailable``.

A key the revocation feed says was retired (compromised) is dropped at once and banned for the
life of the process: a JWKS fetched later that still lists it (a replica that has not seen the
retirement yet, a cached HTTP answer) never brings it back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import get_default_algorithms

from native_iam.claims import ASYMMETRIC_ALGORITHMS

log = logging.getLogger("sidecar.keys")

_ALGORITHMS = get_default_algorithms()
# (kty, crv) → the only algorithm a key of that type verifies.
_ALG_FOR_TYPE: Mapping[tuple[str, str | None], str] = {
    ("EC", "P-256"): "ES256",
    ("RSA", None): "RS256",
    ("OKP", "Ed25519"): "EdDSA",
}
DEFAULT_MAX_AGE_S = 300.0
_MIN_REFRESH_S, _MAX_REFRESH_S = 5.0, 3600.0
_MAX_KEYS = 64

#: A JWKS fetch: returns the JWKS JSON text and how long (seconds) it may be used.
Fetcher = Callable[[], tuple[str, float]]


class JwksError(Exception):
    """The key set could not be fetched or is not a JWKS."""


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A public key with the one algorithm it verifies."""

    kid: str
    alg: str
    algorithm: Any  # jwt.algorithms.Algorithm
    key: Any  # prepared public key object


def parse_jwks(text: str | bytes) -> dict[str, VerifyKey]:
    """The usable keys of a JWKS document, by ``kid``; unusable keys are skipped with a log line."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise JwksError("JWKS is not JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksError('JWKS has no "keys" list')
    keys: dict[str, VerifyKey] = {}
    for jwk in doc["keys"][:_MAX_KEYS]:
        if not isinstance(jwk, dict):
            continue
        kid, kty = jwk.get("kid"), jwk.get("kty")
        if not isinstance(kid, str) or not kid or not isinstance(kty, str):
            log.warning("jwks key skipped", extra={"reason": "no kid or kty"})
            continue
        alg = _ALG_FOR_TYPE.get((kty, jwk.get("crv") if kty != "RSA" else None))
        unusable = alg is None or alg not in ASYMMETRIC_ALGORITHMS or jwk.get("alg", alg) != alg
        if unusable or jwk.get("use", "sig") != "sig":
            log.warning("jwks key skipped", extra={"kid": kid[:64], "reason": "unsupported key type or algorithm"})
            continue
        algorithm = _ALGORITHMS[alg]
        try:
            key = algorithm.from_jwk(jwk)
        except Exception:  # any malformed key material: skip this key, keep the others
            log.warning("jwks key skipped", extra={"kid": kid[:64], "reason": "invalid key material"})
            continue
        if hasattr(key, "private_bytes"):  # a private key in a JWKS: use only its public half
            key = key.public_key()
        keys[kid] = VerifyKey(kid=kid, alg=alg, algorithm=algorithm, key=key)
    return keys


def grpc_fetcher(channel: Any, timeout_s: float = 5.0) -> Fetcher:
    """Fetch from the token service's ``Feed.GetJwks`` over ``channel``."""
    from native_iam.oauth.v1 import feed_pb2, feed_pb2_grpc

    stub = feed_pb2_grpc.FeedStub(channel)

    def fetch() -> tuple[str, float]:
        try:
            response = stub.GetJwks(feed_pb2.GetJwksRequest(), timeout=timeout_s)
        except Exception as exc:  # grpc.RpcError and channel errors
            code = exc.code() if hasattr(exc, "code") else type(exc).__name__
            raise JwksError(f"Feed.GetJwks failed: {code}") from exc
        return response.jwks_json, float(response.max_age_s or DEFAULT_MAX_AGE_S)

    return fetch


_MAX_AGE = re.compile(r"max-age=(\d+)")


def http_fetcher(url: str, timeout_s: float = 5.0) -> Fetcher:
    """Fetch from an HTTP(S) JWKS URL; the cache lifetime comes from ``Cache-Control: max-age``."""

    def fetch() -> tuple[str, float]:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 (scheme checked in settings)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                body = response.read(1 << 20)
                match = _MAX_AGE.search(response.headers.get("Cache-Control", ""))
        except Exception as exc:
            raise JwksError(f"GET {url} failed: {exc}") from exc
        return body.decode("utf-8", "replace"), float(match.group(1)) if match else DEFAULT_MAX_AGE_S

    return fetch


class KeyStore:
    """The current key set, its age, background refresh and single-flight refetch on unknown ``kid``.

    Reads (:meth:`usable`) are a couple of attribute loads: the key dict is replaced, never mutated.
    ``generation`` changes whenever the set of keys changes, so cached decisions can be dropped.
    """

    def __init__(
        self,
        fetch: Fetcher,
        *,
        max_age_s: float,
        min_refetch_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_fetch: Callable[[bool], None] = lambda ok: None,
    ) -> None:
        self._fetch = fetch
        self._max_age_s = max_age_s
        self._min_refetch_s = min_refetch_s
        self._clock = clock
        self._on_fetch = on_fetch
        self.keys: dict[str, VerifyKey] = {}
        self.loaded = False
        self.fetched_at = float("-inf")
        self.refresh_after_s = DEFAULT_MAX_AGE_S
        self.generation = 0
        #: Kids the feed said were retired: never trusted again by this process (replaced, not mutated).
        self.retired: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._install_lock = threading.Lock()
        self._inflight: futures.Future[bool] | None = None
        self._last_attempt = float("-inf")
        self._executor = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jwks")

    def refresh(self) -> bool:
        """Fetch and install the key set now. True on success; failures keep the old keys."""
        with self._lock:
            self._last_attempt = self._clock()
        try:
            text, max_age = self._fetch()
            keys = parse_jwks(text)
        except JwksError as exc:
            self._on_fetch(False)
            log.warning("jwks fetch failed", extra={"error": str(exc)})
            return False
        self._on_fetch(True)
        with self._install_lock:  # background refresh and unknown-kid refetch may finish together
            keys = {kid: key for kid, key in keys.items() if kid not in self.retired}
            if {k: (v.alg, _fingerprint(v)) for k, v in keys.items()} != {
                k: (v.alg, _fingerprint(v)) for k, v in self.keys.items()
            }:
                self.keys = keys
                self.generation += 1
                log.info("jwks installed", extra={"kids": sorted(keys)})
            self.fetched_at = self._clock()
            self.refresh_after_s = min(max(max_age, _MIN_REFRESH_S), _MAX_REFRESH_S)
            self.loaded = True
        return True

    def ban(self, kid: str) -> None:
        """Stop trusting ``kid`` now and for good (it was retired): drop it, refuse it in later fetches.

        Tokens naming it are then refused as retired (:func:`sidecar.decision.verify`), without the
        JWKS refetch an unknown kid triggers: forgeries must not use up the refetch budget that
        the replacement key's first tokens need.
        """
        with self._install_lock:
            if kid in self.retired:
                return
            self.retired = self.retired | {kid}
            if kid in self.keys:
                # Replaced, never mutated (readers hold no lock); the new generation voids cached allows.
                self.keys = {k: v for k, v in self.keys.items() if k != kid}
            self.generation += 1
            log.warning("jwks key banned: retired", extra={"kid": kid[:64]})
        # A retired signing key was replaced by one that signs at once: fetch it now rather than
        # when its first token arrives (that refetch may be held back by min_refetch_s).
        with contextlib.suppress(RuntimeError):  # the executor is already shut down: stopping
            self.refetch(force=True)

    def age_s(self) -> float:
        return self._clock() - self.fetched_at

    def usable(self) -> dict[str, VerifyKey] | None:
        """The keys to verify with, or None when none were ever loaded or they are too old."""
        if self._clock() - self.fetched_at > self._max_age_s:
            return None
        return self.keys

    def refetch(self, *, force: bool = False) -> futures.Future[bool]:
        """Refetch for an unknown ``kid``: one fetch at a time, at most one per ``min_refetch_s``
        (``force``: whatever the last attempt, for a retirement, which the feed announces).

        Returns a future resolving to True when a fetch ran and succeeded; callers wait on it
        (with a deadline) and look the ``kid`` up again.
        """
        with self._lock:
            if self._inflight is not None and not self._inflight.done():
                return self._inflight
            if not force and self._clock() - self._last_attempt < self._min_refetch_s:
                done: futures.Future[bool] = futures.Future()
                done.set_result(False)
                return done
            self._last_attempt = self._clock()
            self._inflight = self._executor.submit(self.refresh)
            return self._inflight

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _fingerprint(key: VerifyKey) -> str:
    return json.dumps(key.algorithm.to_jwk(key.key, as_dict=True), sort_keys=True)
