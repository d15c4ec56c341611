"""native_iam/runtime/logs.py: the one log schema of both roles; one line per record whatever the values."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from native_iam.runtime import logs

BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00", "\x1b[31m"]


def _record(value: str, *, msg: str = "password grant refused") -> logging.LogRecord:
    record = logging.LogRecord("token_service.api.grpc.oauth", logging.INFO, __file__, 1, msg, None, None)
    record.identity = value
    record.client_secret = "s3cr3t"
    return record


def test_both_roles_use_the_shared_formatters() -> None:
    """The token service and the sidecar log with the same classes: same keys, same redaction. Neither
    role defines a formatter or configures logging itself; both CLIs call the shared configure()."""
    from sidecar import cli as sidecar_cli
    from token_service.cli import main as token_service_cli

    root = Path(logs.__file__).resolve().parents[2]
    for package in ("token_service", "sidecar"):
        for path in (root / package).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            assert "logging.Formatter" not in source and "basicConfig" not in source, path
    for cli in (token_service_cli, sidecar_cli):
        assert "logs.configure(" in Path(cli.__file__).read_text(encoding="utf-8"), cli.__name__


@pytest.mark.parametrize("brk", BREAKS)
@pytest.mark.parametrize("formatter", [logs.TextFormatter(), logs.JsonFormatter()], ids=["text", "json"])
def test_a_value_with_a_line_break_stays_on_its_line(formatter: logging.Formatter, brk: str) -> None:
    """Any line boundary str.splitlines knows, in a value or the message, stays escaped on one line."""
    value = f"mallory{brk}2026-01-01T00:00:00.000Z INFO forged: admin granted"
    line = formatter.format(_record(value, msg=f"refused {value}"))
    assert len(line.splitlines()) == 1, line
    assert brk not in line


def test_text_escapes_are_unambiguous_and_json_round_trips() -> None:
    """Text shows \\n for a newline and \\\\ for a backslash, quoting values with spaces; JSON gives
    the original value back."""
    value = 'a\\nb\nc d="e"'
    text = logs.TextFormatter().format(_record(value))
    assert 'identity="a\\\\nb\\nc d=\\"e\\""' in text, text
    assert json.loads(logs.JsonFormatter().format(_record(value)))["identity"] == value


@pytest.mark.parametrize("formatter", [logs.TextFormatter(), logs.JsonFormatter()], ids=["text", "json"])
def test_secrets_are_redacted_in_both_formats(formatter: logging.Formatter) -> None:
    """Secret-named fields and JWT-shaped strings never reach either format (both roles)."""
    line = formatter.format(_record("eyJhbGciOi.eyJzdWIiOiJ4.c2ln"))
    assert "s3cr3t" not in line and "eyJ" not in line and "[redacted]" in line and "[token]" in line


def test_an_exception_stays_on_the_record_line() -> None:
    """A traceback (whose message may quote client input) is escaped onto the record's one line."""
    try:
        raise ValueError("bad identity\nFORGED LINE")
    except ValueError:
        import sys

        record = _record("x")
        record.exc_info = sys.exc_info()
    line = logs.TextFormatter().format(record)
    assert len(line.splitlines()) == 1 and "exc=" in line and "FORGED LINE" in line
