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


def test_http_connection_limits_default_to_a_few_seconds() -> None:
    """Slow clients are cut off within seconds by default (head 5 s, body 10 s, idle 5 s)."""
    settings = Settings.from_env({})
    assert (settings.http_header_timeout_s, settings.http_body_timeout_s, settings.http_keepalive_s) == (5, 10, 5)
    assert settings.http_max_connections == 1000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NATIVE_IAM_HTTP_HEADER_TIMEOUT_S", "0"),
        ("NATIVE_IAM_HTTP_BODY_TIMEOUT_S", "never"),
        ("NATIVE_IAM_HTTP_KEEPALIVE_S", "-1"),
        ("NATIVE_IAM_HTTP_MAX_CONNECTIONS", "0"),
    ],
)
def test_bad_http_connection_limit_names_the_variable(variable: str, value: str) -> None:
    """A timeout of zero (no deadline at all) or a cap under one stops start-up naming the variable."""
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})
