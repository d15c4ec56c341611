"""The signing key ring: generated and stored keys or keys from files, rotation, and the JWKS.

Lifecycle of a stored key (all instants in Unix seconds)::

    publish_at ──(publish delay)──> activate_at ──(signs)──> retire_at ──(max token TTL)──> expire_at
       in the JWKS, verifies            the newest active key signs         still verifies, in JWKS

A rotated key is published before it signs, so that every consumer of the JWKS (which may cache
it for NATIVE_IAM_JWKS_MAX_AGE_S) knows it before the first token it signed arrives; a retired
key stays published until the longest-lived token it signed has expired.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from sqlalchemy.ext.asyncio import AsyncConnection

from token_service import revocations
from token_service.settings import Settings, SettingsError
from token_service.store import Store
from token_service.store import keys as stored_keys

__all__ = ["KeyRing", "SigningKey", "generate_key", "load_key_dir"]

log = logging.getLogger(__name__)

_HMAC_PREFIX = "hmac-hex:"
HMAC_KEY_SIZES = (32, 48, 64)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key: what signs (``private``), what verifies (``verifier``) and when it is valid."""

    kid: str
    alg: str
    private: Any
    verifier: Any
    publish_at: float = 0.0
    activate_at: float = 0.0
    retire_at: float | None = None
    expire_at: float | None = None
    source: str = "database"

    @property
    def is_symmetric(self) -> bool:
        return self.alg == "HS256"

    def public_jwk(self) -> dict[str, Any] | None:
        """The public JWK (RFC 7517) or ``None`` for an HMAC key, which is never published."""
        if self.is_symmetric:
            return None
        jwk = _to_jwk(self.verifier)
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    def signs_at(self, now: float) -> bool:
        return self.activate_at <= now and (self.retire_at is None or now < self.retire_at)

    def verifies_at(self, now: float) -> bool:
        return self.expire_at is None or now < self.expire_at

    def published_at(self, now: float) -> bool:
        return self.publish_at <= now and self.verifies_at(now)

    def private_text(self) -> str:
        if self.is_symmetric:
            return _HMAC_PREFIX + self.private.hex()
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")


def generate_key(alg: str, hmac_key_bytes: int = 32, now: float | None = None) -> SigningKey:
    """A fresh key for ``alg`` (RSA 2048 bits, P-256, Ed25519, or random HMAC bytes)."""
    now = time.time() if now is None else now
    if alg == "HS256":
        if hmac_key_bytes not in HMAC_KEY_SIZES:
            raise ValueError(f"HS256 key size must be one of {HMAC_KEY_SIZES} bytes")
        secret = secrets.token_bytes(hmac_key_bytes)
        return SigningKey(f"hs256-{secrets.token_hex(8)}", alg, secret, secret, now, now)
    if alg == "ES256":
        private: Any = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    return _asymmetric(private, now, now)


def _asymmetric(private: Any, publish_at: float, activate_at: float, source: str = "database") -> SigningKey:
    public = private.public_key()
    alg = _alg_of(private)
    return SigningKey(_thumbprint(_to_jwk(public)), alg, private, public, publish_at, activate_at, source=source)


def _alg_of(private: Any) -> str:
    if isinstance(private, ec.EllipticCurvePrivateKey):
        if not isinstance(private.curve, ec.SECP256R1):
            raise ValueError(f"EC keys must use P-256 for ES256, not {private.curve.name}")
        return "ES256"
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < 2048:
            raise ValueError("RSA keys must have at least 2048 bits (RFC 7518 §3.3)")
        return "RS256"
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ValueError(f"unsupported key type {type(private).__name__}")


def _to_jwk(public: Any) -> dict[str, Any]:
    if isinstance(public, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(public, as_dict=True)
    if isinstance(public, rsa.RSAPublicKey):
        return RSAAlgorithm.to_jwk(public, as_dict=True)
    return OKPAlgorithm.to_jwk(public, as_dict=True)


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a kid that names the key, not its owner."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _from_text(kid: str, alg: str, text: str) -> tuple[Any, Any]:
    if text.startswith(_HMAC_PREFIX):
        secret = bytes.fromhex(text.removeprefix(_HMAC_PREFIX))
        return secret, secret
    private = serialization.load_pem_private_key(text.encode("ascii"), password=None)
    if _alg_of(private) != alg:
        raise ValueError(f"stored key {kid} is not an {alg} key")
    return private, private.public_key()


def load_key_dir(directory: Path) -> list[SigningKey]:
    """Keys from a directory (a mounted Kubernetes Secret): ``*.pem`` private keys (PKCS#8 or
    traditional, unencrypted) and ``*.hs256`` raw HMAC secrets of 32, 48 or 64 bytes.

    Files are taken in name order; the last one of the configured algorithm signs.
    """
    keys: list[SigningKey] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue  # Kubernetes mounts ..data symlinks and dot-directories beside the files
        if path.suffix == ".pem":
            try:
                private = serialization.load_pem_private_key(path.read_bytes(), password=None)
                keys.append(_asymmetric(private, 0.0, 0.0, source=f"file:{path.name}"))
            except (ValueError, TypeError) as exc:
                raise SettingsError("NATIVE_IAM_SIGNING_KEYS_DIR", f"{path.name}: {exc}") from None
        elif path.suffix == ".hs256":
            secret = path.read_bytes()
            if len(secret) not in HMAC_KEY_SIZES:
                raise SettingsError(
                    "NATIVE_IAM_SIGNING_KEYS_DIR", f"{path.name}: an HS256 key must be 32, 48 or 64 bytes"
                )
            keys.append(SigningKey(f"hs256-{path.stem}", "HS256", secret, secret, source=f"file:{path.name}"))
    return keys


class KeyRing:
    """The keys this replica signs and verifies with, refreshed from the store periodically."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._keys: dict[str, SigningKey] = {}

    # --- reading ---------------------------------------------------------------------------

    def signing_key(self, now: float | None = None) -> SigningKey:
        """The key that signs now: the most recently activated one of the configured algorithm."""
        now = time.time() if now is None else now
        candidates = [k for k in self._keys.values() if k.alg == self.settings.signing_alg and k.signs_at(now)]
        if not candidates:
            raise RuntimeError("no active signing key (KeyRing.load() not run?)")
        return max(candidates, key=lambda k: (k.activate_at, k.kid))

    def verification_key(self, kid: str, now: float | None = None) -> SigningKey | None:
        """The key named ``kid`` if it may still verify tokens, else ``None``."""
        key = self._keys.get(kid)
        now = time.time() if now is None else now
        return key if key is not None and key.verifies_at(now) else None

    def keys(self) -> list[SigningKey]:
        return sorted(self._keys.values(), key=lambda k: (k.activate_at, k.kid))

    def jwks(self, now: float | None = None) -> dict[str, Any]:
        """The JSON Web Key Set: public parts of every published, unexpired asymmetric key."""
        now = time.time() if now is None else now
        published = [k.public_jwk() for k in self.keys() if k.published_at(now)]
        return {"keys": [jwk for jwk in published if jwk is not None]}

    def jwks_json(self) -> str:
        return json.dumps(self.jwks(), separators=(",", ":"))

    # --- loading and rotation ---------------------------------------------------------------

    async def load(self) -> None:
        """Load keys (files or database); generate and store the first key when there is none."""
        if self.settings.signing_keys_dir is not None:
            keys = load_key_dir(self.settings.signing_keys_dir)
            if not any(k.alg == self.settings.signing_alg for k in keys):
                raise SettingsError(
                    "NATIVE_IAM_SIGNING_KEYS_DIR",
                    f"no {self.settings.signing_alg} key (NATIVE_IAM_SIGNING_ALG) among "
                    f"{len(keys)} key file(s) in {self.settings.signing_keys_dir}",
                )
            # The newest file signs: activate keys in file order.
            self._keys = {k.kid: replace(k, activate_at=float(i)) for i, k in enumerate(keys)}
            return
        await self.reload()
        now = time.time()
        if not any(k.alg == self.settings.signing_alg and k.signs_at(now) for k in self._keys.values()):
            async with self.store.startup_lock():
                await self.reload()  # another replica may have generated one meanwhile
                if not any(k.alg == self.settings.signing_alg and k.signs_at(now) for k in self._keys.values()):
                    key = generate_key(self.settings.signing_alg, self.settings.hmac_key_bytes, now)
                    await self._insert(key)
                    log.info("generated signing key", extra={"kid": key.kid, "alg": key.alg})
                    await self.reload()

    async def reload(self) -> None:
        """Re-read stored keys (another replica may have rotated)."""
        if self.settings.signing_keys_dir is not None:
            return
        async with self.store.read() as conn:
            rows = await stored_keys.all_keys(conn)
        keys: dict[str, SigningKey] = {}
        for row in rows:
            existing = self._keys.get(row["kid"])
            if existing is not None:
                private, verifier = existing.private, existing.verifier
            else:
                private, verifier = _from_text(row["kid"], row["alg"], row["private_pem"])
            keys[row["kid"]] = SigningKey(
                row["kid"],
                row["alg"],
                private,
                verifier,
                row["publish_at"],
                row["activate_at"],
                row["retire_at"],
                row["expire_at"],
            )
        self._keys = keys

    async def rotate(self, publish_delay_s: float | None = None, now: float | None = None) -> SigningKey:
        """Publish a new key now that signs after the delay; retire the current one at that instant."""
        if self.settings.signing_keys_dir is not None:
            raise SettingsError("NATIVE_IAM_SIGNING_KEYS_DIR", "keys come from files; rotate by updating the Secret")
        now = time.time() if now is None else now
        delay = self.settings.key_publish_delay_s if publish_delay_s is None else publish_delay_s
        new = replace(
            generate_key(self.settings.signing_alg, self.settings.hmac_key_bytes, now), activate_at=now + delay
        )
        retire_at = new.activate_at
        expire_at = revocations.expires(retire_at, self.settings.max_token_ttl_s)
        async with self.store.write() as conn:
            await self._insert(new, conn)
            await stored_keys.retire_others(conn, new.kid, retire_at, expire_at)
        await self.reload()
        log.info("rotated signing key", extra={"kid": new.kid, "activate_at": new.activate_at})
        return new

    async def retire(self, kid: str, now: float | None = None) -> SigningKey:
        """Retire ``kid`` at once (compromise): out of the JWKS, its tokens dead (a KEY_RETIRED
        event); a signing key is replaced by a new one that signs immediately. Returns the signer."""
        if self.settings.signing_keys_dir is not None:
            raise SettingsError("NATIVE_IAM_SIGNING_KEYS_DIR", "keys come from files; remove the file instead")
        now = time.time() if now is None else now
        await self.reload()
        key = self._keys.get(kid)
        if key is None:
            raise KeyError(kid)
        replacement = None
        if key.signs_at(now) or not any(
            k.kid != kid and k.alg == self.settings.signing_alg and k.signs_at(now) for k in self._keys.values()
        ):
            replacement = generate_key(self.settings.signing_alg, self.settings.hmac_key_bytes, now)
        async with self.store.write() as conn:
            if replacement is not None:
                await self._insert(replacement, conn)
            await conn.run_sync(revocations.retire_key, kid, now, self.settings.max_token_ttl_s)
        await self.reload()
        log.warning("retired signing key", extra={"kid": kid})
        return self.signing_key(now)

    async def _insert(self, key: SigningKey, conn: AsyncConnection | None = None) -> None:
        values = {
            "kid": key.kid,
            "alg": key.alg,
            "private_pem": key.private_text(),
            "created_at": key.publish_at,
            "publish_at": key.publish_at,
            "activate_at": key.activate_at,
            "retire_at": key.retire_at,
            "expire_at": key.expire_at,
        }
        if conn is not None:
            await stored_keys.insert(conn, values)
            return
        async with self.store.write() as own:
            await stored_keys.insert(own, values)
