"""The settings the OAuth HTTP endpoints add to token_service/settings.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from token_service.settings import Settings, SettingsError


def test_defaults() -> None:
    """Unset: the client-secret key is generated later (None here) and the grace window is 5 s."""
    settings = Settings.from_env({})
    assert settings.client_secret_key is None and settings.refresh_grace_s == 5.0


def test_short_client_secret_key_names_the_variable() -> None:
    """A key under 32 bytes stops start-up with an error naming NATIVE_IAM_CLIENT_SECRET_KEY."""
    with pytest.raises(SettingsError, match="NATIVE_IAM_CLIENT_SECRET_KEY"):
        Settings.from_env({"NATIVE_IAM_CLIENT_SECRET_KEY": "too-short"})


def test_client_secret_key_from_file_and_hidden_in_repr(tmp_path: Path) -> None:
    """The key can come from a mounted file (…_FILE) and never shows in repr()."""
    key = "k" * 40
    (tmp_path / "key").write_text(key + "\n")
    settings = Settings.from_env({"NATIVE_IAM_CLIENT_SECRET_KEY_FILE": str(tmp_path / "key")})
    assert settings.client_secret_key == key and key not in repr(settings)


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_bad_grace_names_the_variable(value: str) -> None:
    """A negative or non-numeric grace window names NATIVE_IAM_REFRESH_GRACE_S."""
    with pytest.raises(SettingsError, match="NATIVE_IAM_REFRESH_GRACE_S"):
        Settings.from_env({"NATIVE_IAM_REFRESH_GRACE_S": value})
