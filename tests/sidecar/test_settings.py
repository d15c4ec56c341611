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
        ("NATIVE_IAM_TOKEN_ENDPOINT", "file:///etc/passwd"),
        ("NATIVE_IAM_TOKEN_ENDPOINT", "native-iam-token:8080/oauth2/token"),
        ("NATIVE_IAM_TOKEN_SERVICE_AUDIENCE", ""),
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


# --- variables renamed because the token service gives the old name another meaning ---------

_RENAMED = [
    # (new, deprecated, value, field, parsed)
    ("NATIVE_IAM_ACCEPTED_AUDIENCES", "NATIVE_IAM_AUDIENCE", "a, b", "audiences", ("a", "b")),
    ("NATIVE_IAM_JWKS_MAX_STALENESS_S", "NATIVE_IAM_JWKS_MAX_AGE_S", "600", "jwks_max_staleness_s", 600.0),
]


@pytest.mark.parametrize(("new", "old", "value", "name", "parsed"), _RENAMED)
def test_the_new_name_is_read_without_a_warning(new: str, old: str, value: str, name: str, parsed: object) -> None:
    """The sidecar's own name for the setting is read, and nothing is deprecated."""
    s = from_env({new: value})
    assert getattr(s, name) == parsed and s.renamed == ()


@pytest.mark.parametrize(("new", "old", "value", "name", "parsed"), _RENAMED)
def test_the_old_name_still_works_and_warns_once(
    new: str, old: str, value: str, name: str, parsed: object, caplog: pytest.LogCaptureFixture
) -> None:
    """The deprecated name is still read (one release) and start-up warns once, naming old and new."""
    from native_iam.runtime.env import warn_renamed

    s = from_env({old: value})
    assert getattr(s, name) == parsed
    with caplog.at_level("WARNING"):
        warn_renamed(s.renamed)
    (record,) = caplog.records
    assert record.levelname == "WARNING" and old in record.getMessage() and new in record.getMessage()


@pytest.mark.parametrize(("new", "old", "value", "name", "parsed"), _RENAMED)
def test_with_both_names_the_new_one_wins_and_the_old_one_is_named(
    new: str, old: str, value: str, name: str, parsed: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Both set: the new name's value is used, and the warning says the old one is ignored."""
    from native_iam.runtime.env import warn_renamed

    s = from_env({new: value, old: "ignored-value"})
    assert getattr(s, name) == parsed
    with caplog.at_level("WARNING"):
        warn_renamed(s.renamed)
    (record,) = caplog.records
    assert "ignored" in record.getMessage() and old in record.getMessage() and new in record.getMessage()


@pytest.mark.parametrize("name", ["NATIVE_IAM_ACCEPTED_AUDIENCES", "NATIVE_IAM_JWKS_MAX_STALENESS_S"])
def test_a_bad_value_under_the_new_name_names_it(name: str) -> None:
    """A blank audience list or a staleness below 1 s is refused, naming the variable."""
    with pytest.raises(SettingsError, match=name):
        from_env({name: " " if "AUDIENCES" in name else "0"})


@pytest.mark.parametrize("off", ["", "off", "none", "OFF"])
@pytest.mark.parametrize("variable", ["NATIVE_IAM_METRICS_LISTEN", "NATIVE_IAM_OAUTH_LISTEN"])
def test_an_optional_listener_is_off_as_in_the_token_service(variable: str, off: str) -> None:
    """Blank, `off` and `none` turn an optional listener off, the same words as the token service's."""
    from native_iam.runtime.listen import enabled

    s = from_env({variable: off})
    assert not enabled(s.metrics_listen if "METRICS" in variable else s.oauth_listen)


def test_workload_token_settings() -> None:
    """Defaults point at the token Service's HTTP port and the conventional projected-token path; `off`/`none`/
    empty turn workload tokens off."""
    s = from_env({})
    assert s.token_endpoint == "http://native-iam-token:8080/oauth2/token"
    assert s.service_account_token_file == "/var/run/secrets/tokens/native-iam"
    assert s.token_service_audience == "native-iam"
    for off in ("off", "none", "", "OFF"):
        assert from_env({"NATIVE_IAM_TOKEN_ENDPOINT": off}).token_endpoint == ""
    read = from_env(
        {
            "NATIVE_IAM_TOKEN_ENDPOINT": "https://iam.example.com/oauth2/token",
            "NATIVE_IAM_SERVICE_ACCOUNT_TOKEN_FILE": "/tokens/t",
            "NATIVE_IAM_TOKEN_SERVICE_AUDIENCE": "iam",
        }
    )
    assert (read.token_endpoint, read.service_account_token_file, read.token_service_audience) == (
        "https://iam.example.com/oauth2/token",
        "/tokens/t",
        "iam",
    )
