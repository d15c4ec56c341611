"""Log injection (finding F11): a value an attacker chooses cannot forge a log line.

A real ``native-iam token-service`` with NATIVE_IAM_LOG_FORMAT=text is sent a password grant whose
identity holds a newline, a carriage return and the Unicode line separators, each followed by
text shaped like a log line; the log, split into lines the way any reader splits it, has no line
that does not start like the formatter's own, and the attacker's value is still there, escaped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from native_iam.oauth.v1 import oauth_pb2
from tests.reliability._services import TokenService

FORGED = "2026-01-01T00:00:00.000Z INFO token_service.admin.service: admin granted identity=mallory"
# How every line of the text format starts: timestamp, level, logger name.
LINE = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d[.,]\d{3}Z? +(DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")


@pytest.mark.parametrize("separator", ["\n", "\r", "\r\n", "\u2028", "\u2029", "\x85", "\x0b", "\x1e"])
def test_a_newline_in_a_username_cannot_forge_a_log_line(tmp_path: Path, separator: str) -> None:
    """Every line of the text log is one the formatter wrote; the identity appears escaped, once."""
    service = TokenService(tmp_path, f"sqlite:///{tmp_path / 'logs.db'}", env={"NATIVE_IAM_LOG_FORMAT": "text"}).start()
    try:
        identity = f"mallory{separator}{FORGED}"
        response = service.password_grant(identity, "wrong-password")
        assert response.status != oauth_pb2.CreateTokenWithPasswordResponse.OK
    finally:
        service.stop()
    lines = service.log().splitlines()  # str.splitlines: every Unicode line boundary counts
    assert lines
    assert not [line for line in lines if line.startswith(FORGED)], "the attacker's text became a log line of its own"
    foreign = [line for line in lines if not LINE.match(line)]
    assert not foreign, foreign
    refused = [line for line in lines if "password grant refused" in line]
    assert len(refused) == 1 and "mallory" in refused[0] and FORGED in refused[0], refused
