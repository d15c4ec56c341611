"""native_iam/runtime/env.py: the one environment reader of both roles; every error names the variable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from native_iam.runtime.env import Env, EnvError, warn_renamed


@pytest.mark.parametrize(
    ("read", "value"),
    [
        (lambda e: e.integer("V", 1, low=1), "x"),
        (lambda e: e.integer("V", 1, low=1), "0"),
        (lambda e: e.integer("V", 32, choices=(32, 64)), "16"),
        (lambda e: e.number("V", 1.0, low=0), "nan"),
        (lambda e: e.number("V", 1.0, low=0), "-1"),
        (lambda e: e.boolean("V", False), "maybe"),
        (lambda e: e.choice("V", "a", ("a", "b")), "c"),
        (lambda e: e.listen("V", "0.0.0.0:1"), "nohost"),
        (lambda e: e.listen("V", "0.0.0.0:1", optional=True), "host:99999"),
        (lambda e: e.text("V", "d", blank="error"), "  "),
        (lambda e: e.networks("V"), "10.0.0.0/8 proxy"),
        (lambda e: e.directory("V"), "/does/not/exist"),
        (lambda e: e.workers("V", per_cpu=False), "0"),
        (lambda e: e.workers("V", per_cpu=True), "-1"),
    ],
)
def test_a_bad_value_is_an_error_starting_with_the_variable(read, value: str) -> None:  # type: ignore[no-untyped-def]
    """Each reader refuses a bad value with EnvError("V: …"), never a bare ValueError or a default."""
    with pytest.raises(EnvError) as info:
        read(Env({"V": value}))
    assert str(info.value).startswith("V: ") and info.value.variable == "V"


def test_unset_and_blank_mean_the_default() -> None:
    """Unset or blank: the default (a blank optional listener or blank="off" text is off instead)."""
    for env in (Env({}), Env({"V": "  "})):
        assert env.integer("V", 7) == 7 and env.number("V", 0.5) == 0.5 and env.boolean("V", True)
        assert env.text("V", "d") == "d" and env.choice("V", "a", ("a",)) == "a"
        assert env.listen("V", "0.0.0.0:1") == "0.0.0.0:1"
    assert Env({"V": ""}).listen("V", "0.0.0.0:1", optional=True) == ""
    assert Env({"V": ""}).text("V", "x-header", blank="off") == ""


def test_workers_zero_is_one_per_cpu_only_where_allowed() -> None:
    """NATIVE_IAM_WORKERS=0 is one per CPU for a role that allows it (the token service)."""
    assert Env({"V": "0"}).workers("V", per_cpu=True) >= 1
    assert Env({"V": "3"}).workers("V", per_cpu=False) == 3


def test_a_secret_comes_from_the_variable_or_its_file(tmp_path: Path) -> None:
    """NAME or NAME_FILE (trailing newline dropped), never both; an unreadable file names NAME_FILE."""
    secret = tmp_path / "s"
    secret.write_text("s3cr3t\n")
    assert Env({"S": "direct"}).secret("S") == "direct"
    assert Env({"S_FILE": str(secret)}).secret("S") == "s3cr3t"
    assert Env({}).secret("S") is None
    with pytest.raises(EnvError, match=r"^S: set either S or S_FILE"):
        Env({"S": "direct", "S_FILE": str(secret)}).secret("S")
    with pytest.raises(EnvError, match=r"^S_FILE: cannot read") as info:
        Env({"S_FILE": str(tmp_path / "missing")}).secret("S")
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize(
    ("environ", "read", "renames"),
    [
        ({}, "NEW", []),
        ({"NEW": "1"}, "NEW", []),
        ({"OLD": "1"}, "OLD", [("OLD", "NEW", False)]),
        ({"OLD": "1", "NEW": "2"}, "NEW", [("OLD", "NEW", True)]),
        ({"OLD": ""}, "OLD", [("OLD", "NEW", False)]),  # blank under the old name: its own meaning
    ],
)
def test_a_renamed_variable(environ: dict[str, str], read: str, renames: list[tuple[str, str, bool]]) -> None:
    """The new name wins; the old one is read only without it; every use of the old one is noted."""
    env = Env(environ)
    assert env.renamed("NEW", "OLD") == read
    assert env.renames == renames


def test_renamed_variables_warn_once_each(caplog: pytest.LogCaptureFixture) -> None:
    """One WARNING per old name in use, naming old and new (and saying when the old one is ignored)."""
    with caplog.at_level(logging.WARNING):
        warn_renamed([("OLD_A", "NEW_A", False), ("OLD_B", "NEW_B", True)])
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2
    assert "OLD_A" in messages[0] and "NEW_A" in messages[0] and "ignored" not in messages[0]
    assert "OLD_B" in messages[1] and "NEW_B" in messages[1] and "ignored" in messages[1]
