"""Settings come from the environment once, with defaults, and bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from token_service.settings import Settings, SettingsError


def test_defaults_match_the_documented_ones() -> None:
    """With an empty environment every field has its documented default."""
    s = Settings.from_env({})
    assert s.db_url == "sqlite:///./native-iam.db"
    assert s.grpc_listen == "0.0.0.0:50051" and s.metrics_listen == "0.0.0.0:9464"
    assert s.signing_alg == "ES256" and s.access_token_ttl_s == 3600
    assert (s.argon2_memory_kib, s.argon2_time_cost, s.argon2_parallelism) == (19456, 2, 1)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SYSTEM_DB_URL", "mongodb://root@db/admin"),
        ("NATIVE_IAM_GRPC_LISTEN", "nowhere"),
        ("NATIVE_IAM_SIGNING_ALG", "none"),
        ("NATIVE_IAM_ACCESS_TOKEN_TTL_S", "soon"),
        ("NATIVE_IAM_ACCESS_TOKEN_TTL_S", "0"),
        ("NATIVE_IAM_HS256_KEY_BYTES", "16"),
        ("NATIVE_IAM_LOCKOUT_ENABLED", "maybe"),
        ("NATIVE_IAM_LOCKOUT_ADDRESS_FREE_ATTEMPTS", "0"),
        ("NATIVE_IAM_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local"),
        ("NATIVE_IAM_PRUNE_INTERVAL_S", "-1"),
        ("NATIVE_IAM_LOG_FORMAT", "xml"),
        ("NATIVE_IAM_SIGNING_KEYS_DIR", "/does/not/exist"),
    ],
)
def test_bad_value_names_the_variable(variable: str, value: str) -> None:
    """A value the service cannot use raises SettingsError whose message starts with the variable."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env({variable: value})
    assert str(info.value).startswith(variable)


def test_trusted_proxies_are_networks() -> None:
    """NATIVE_IAM_TRUSTED_PROXIES: comma- or space-separated CIDRs; a bare address is one host."""
    s = Settings.from_env({"NATIVE_IAM_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7 fd00::/8"})
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]
    assert Settings.from_env({}).trusted_proxies == ()


def test_bootstrap_password_from_file(tmp_path: Path) -> None:
    """NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD_FILE is read (a mounted Secret), trailing newline dropped."""
    secret = tmp_path / "pw"
    secret.write_text("hunter2-long\n")
    s = Settings.from_env(
        {"NATIVE_IAM_BOOTSTRAP_ADMIN": "root", "NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD_FILE": str(secret)}
    )
    assert s.bootstrap_admin_password == "hunter2-long"


def test_bootstrap_admin_without_password_is_an_error() -> None:
    """An admin name without a password is refused, naming the password variable."""
    with pytest.raises(SettingsError, match="NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD"):
        Settings.from_env({"NATIVE_IAM_BOOTSTRAP_ADMIN": "root"})


def test_repr_hides_the_bootstrap_password() -> None:
    """repr() (and so any log of the settings) never shows the bootstrap password."""
    s = Settings.from_env({"NATIVE_IAM_BOOTSTRAP_ADMIN": "root", "NATIVE_IAM_BOOTSTRAP_ADMIN_PASSWORD": "pw-123456"})
    assert "pw-123456" not in repr(s)


def test_every_variable_is_in_the_docs_table() -> None:
    """Each environment variable Settings.from_env reads has a row in docs/configuration.md's token service table."""
    import inspect
    import re

    from token_service import settings as module

    names = set(re.findall(r'"((?:SYSTEM|NATIVE_IAM)_[A-Z0-9_]+)"', inspect.getsource(module.Settings.from_env)))
    docs = (Path(module.__file__).parent.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    readme = docs[docs.index("## Token service\n") : docs.index("\n## Sidecar\n")]
    missing = sorted(name for name in names if f"| `{name}` |" not in readme)
    assert names and not missing, missing


@pytest.mark.parametrize("off", ["", "off", "none", "OFF"])
def test_the_metrics_listener_is_off_as_in_the_sidecar(off: str) -> None:
    """NATIVE_IAM_METRICS_LISTEN blank, `off` or `none` serves no metrics, the same words as the sidecar's."""
    from native_iam.runtime.listen import enabled

    assert not enabled(Settings.from_env({"NATIVE_IAM_METRICS_LISTEN": off}).metrics_listen)
    assert enabled(Settings.from_env({}).metrics_listen)


def test_settings_error_is_the_shared_one() -> None:
    """Both roles raise the one error class of native_iam/runtime/env.py (a CLI catches one type)."""
    from native_iam.runtime.env import EnvError
    from sidecar.settings import SettingsError as SidecarSettingsError

    assert SettingsError is EnvError is SidecarSettingsError
