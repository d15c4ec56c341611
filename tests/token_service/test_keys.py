"""The key ring: generation per algorithm, JWKS with public parts only, files, rotation."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from tests.token_service.conftest import add_identity
from token_service.access import verify_access_token
from token_service.core import Core
from token_service.errors import TokenInvalid
from token_service.grants import create_token_with_password, refresh_access_token
from token_service.keys import KeyRing, generate_key, load_key_dir
from token_service.revocations import KEY_CUTOFF_ALL
from token_service.settings import SettingsError
from token_service.store import Store
from token_service.store.tables import revocations
from token_service.testing import settings_for_tests

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_public_jwk_has_no_private_members(alg: str) -> None:
    """A published JWK carries kid, alg, use and only public parameters."""
    jwk = generate_key(alg).public_jwk()
    assert jwk is not None
    assert jwk["alg"] == alg and jwk["use"] == "sig" and jwk["kid"]
    assert not PRIVATE_MEMBERS & jwk.keys()


@pytest.mark.parametrize("size", [32, 48, 64])
def test_hmac_key_sizes_and_never_published(size: int) -> None:
    """HS256 keys have 32, 48 or 64 random bytes and no public JWK."""
    key = generate_key("HS256", size)
    assert len(key.private) == size and key.public_jwk() is None


def test_hmac_key_size_outside_allowed_is_refused() -> None:
    """A 16-byte HMAC key is refused."""
    with pytest.raises(ValueError, match="32, 48, 64"):
        generate_key("HS256", 16)


def test_key_dir_loads_pem_and_hmac_files(tmp_path: Path) -> None:
    """*.pem private keys and *.hs256 secrets are loaded; kid of a PEM key is its RFC 7638 thumbprint."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "a.pem").write_bytes(pem)
    (tmp_path / "b.hs256").write_bytes(secrets.token_bytes(48))
    (tmp_path / "..data").mkdir()
    keys = load_key_dir(tmp_path)
    assert [k.alg for k in keys] == ["ES256", "HS256"]
    assert keys[0].kid == generate_key.__globals__["_thumbprint"](keys[0].public_jwk())


def test_key_dir_with_bad_file_names_the_variable(tmp_path: Path) -> None:
    """An unreadable key file is a SettingsError naming NATIVE_IAM_SIGNING_KEYS_DIR."""
    (tmp_path / "broken.pem").write_text("not a key")
    with pytest.raises(SettingsError, match="NATIVE_IAM_SIGNING_KEYS_DIR"):
        load_key_dir(tmp_path)


async def test_generated_key_is_stored_and_reused(sqlite_url: str) -> None:
    """The first start generates and stores a key; a second ring on the same store uses the same key."""
    settings = settings_for_tests(sqlite_url)
    store = Store(settings.db_url)
    await store.migrate()
    first, second = KeyRing(settings, store), KeyRing(settings, store)
    await first.load()
    await second.load()
    assert first.signing_key().kid == second.signing_key().kid
    stored_jwks = json.dumps(first.jwks())
    assert "PRIVATE" not in stored_jwks and '"d"' not in stored_jwks
    await store.close()


async def test_rotation_publishes_before_signing(core: Core) -> None:
    """A rotated key is in the JWKS at once, signs only after the delay, and the old key stays published."""
    old = core.keys.signing_key()
    start = time.time()
    new = await core.keys.rotate(publish_delay_s=60, now=start)
    now = start + 1
    assert {k["kid"] for k in core.keys.jwks(now)["keys"]} >= {old.kid, new.kid}
    assert core.keys.signing_key(now).kid == old.kid
    later = start + 61
    assert core.keys.signing_key(later).kid == new.kid
    assert old.kid in {k["kid"] for k in core.keys.jwks(later)["keys"]}
    gone = later + core.settings.max_token_ttl_s
    assert old.kid not in {k["kid"] for k in core.keys.jwks(gone)["keys"]}


async def test_retired_key_verifies_nothing_at_once_whatever_the_iat(core: Core) -> None:
    """After retire(kid), CheckAccess (even from its cache), refresh and every token verification
    refuse the key's tokens, forged ones with an iat after the retirement included; the JWKS drops
    it, and the KEY_RETIRED event's cut-off covers every iat (for sidecars that compare it)."""
    await add_identity(core, "frank", "pw-123456", ("a:b",))
    issued = await create_token_with_password(core, namespace="", identity="frank", password="pw-123456")
    await verify_access_token(core, issued.access_token)  # now in CheckAccess's cache
    key = core.keys.signing_key()
    now = int(time.time())
    claims = {
        **jwt.decode(issued.access_token, options={"verify_signature": False}),
        "iat": now + 3600,
        "nbf": now,
        "exp": now + 600,
    }
    forged = jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid, "typ": "at+jwt"})
    await core.keys.retire(key.kid)
    for token in (issued.access_token, forged):
        with pytest.raises(TokenInvalid):
            await verify_access_token(core, token)
    with pytest.raises(TokenInvalid):
        await refresh_access_token(core, refresh_token=issued.refresh_token)
    assert key.kid not in {k["kid"] for k in core.keys.jwks()["keys"]}
    async with core.store.read() as conn:
        cutoffs = (await conn.execute(select(revocations.c.cutoff_unix).where(revocations.c.kid == key.kid))).all()
    assert [c for (c,) in cutoffs] == [KEY_CUTOFF_ALL]
