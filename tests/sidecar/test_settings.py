"""sidecar/settings.py: defaults, parsing, and errors naming the variable."""

from __future__ import annotations

import pytest

from sidecar.settings import Settings, SettingsError, from_env


def test_defaults() -> None:
    """An empty environment gives the documented defaults."""
    s = from_env({})
    assert s.token_url == "native-iam-token:80" and s.authz_listen == "127.0.0.1:9191"
    assert s.feed_stale_policy == "closed" and s.audiences == ("native-iam",) and s.workers == 1


def test_values_are_read() -> None:
    """Every variable is read into its field."""
    s = from_env(
        {
            "NATIVE_IAM_TOKEN_URL": "ts:50051",
            "NATIVE_IAM_AUTHENTICATION_PASSWORD_URL": "pw:80",
            "NATIVE_IAM_AUDIENCE": "a, b",
            "NATIVE_IAM_FEED_STALE_POLICY": "open",
            "NATIVE_IAM_WORKERS": "2",
            "NATIVE_IAM_TOKEN_HEADER": "X-Token",
            "NATIVE_IAM_STRIP_TOKEN": "true",
            "NATIVE_IAM_OAUTH_LISTEN": "",
        }
    )
    assert s.token_url == "ts:50051" and s.forward_password_url == "pw:80"
    assert s.audiences == ("a", "b") and s.feed_stale_policy == "open" and s.workers == 2
    assert s.token_header == "x-token" and s.strip_token and s.oauth_listen == ""


def test_password_url_defaults_to_token_url() -> None:
    """Without NATIVE_IAM_AUTHENTICATION_PASSWORD_URL, password grants go to NATIVE_IAM_TOKEN_URL."""
    assert from_env({"NATIVE_IAM_TOKEN_URL": "ts:1"}).forward_password_url == "ts:1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NATIVE_IAM_WORKERS", "two"),
        ("NATIVE_IAM_WORKERS", "0"),
        ("NATIVE_IAM_FEED_MAX_STALENESS_S", "nan"),
        ("NATIVE_IAM_FEED_STALE_POLICY", "maybe"),
        ("NATIVE_IAM_AUTHZ_LISTEN", "nohost"),
        ("NATIVE_IAM_JWKS_URL", "file:///etc/passwd"),
        ("NATIVE_IAM_TOKEN_HEADER", "bad header"),
        ("NATIVE_IAM_REALM", 'a"b'),
        ("NATIVE_IAM_LOG_LEVEL", "LOUD"),
        ("NATIVE_IAM_STRIP_TOKEN", "perhaps"),
        ("NATIVE_IAM_AUDIENCE", " "),
        ("NATIVE_IAM_AUTHZ_SERVER", "threads"),
        ("NATIVE_IAM_AUTHZ_THREADS", "0"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    """A bad value raises SettingsError whose message names the variable."""
    with pytest.raises(SettingsError, match=name):
        from_env({name: value})


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after start-up."""
    with pytest.raises(AttributeError):
        Settings().workers = 3  # type: ignore[misc]


def test_authz_server_defaults_to_sync_with_three_threads() -> None:
    """The measured choice is the default: the sync server with 3 threads."""
    s = from_env({})
    assert (s.authz_server, s.authz_threads) == ("sync", 3)


def test_authz_server_can_be_aio() -> None:
    """NATIVE_IAM_AUTHZ_SERVER=aio selects grpc.aio."""
    assert from_env({"NATIVE_IAM_AUTHZ_SERVER": "aio"}).authz_server == "aio"


def test_every_variable_is_in_the_docs_table() -> None:
    """Each NATIVE_IAM_* variable settings.py reads has a row in the sidecar table of docs/configuration.md."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    read = set(re.findall(r'"(NATIVE_IAM_[A-Z_]+)"', (root / "sidecar" / "settings.py").read_text()))
    readme = (root / "docs" / "configuration.md").read_text()
    table = readme[readme.index("## Sidecar\n") :]
    documented = set(re.findall(r"^\| `(NATIVE_IAM_[A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert read and read <= documented, sorted(read - documented)
