"""The sidecar's JSON and text log lines carry the record's extra fields (the schema shared with
the token service, native_iam/runtime/logs.py)."""

from __future__ import annotations

import json
import logging

from native_iam.runtime.logs import JsonFormatter, TextFormatter


def _record() -> logging.LogRecord:
    record = logging.LogRecord("sidecar.authorization", logging.INFO, __file__, 1, "deny", None, None)
    record.reason = "expired"
    record.jti = "j-1"
    return record


def test_json_line_has_message_and_extras() -> None:
    """A JSON log line is one object with level, logger, message and the extra fields."""
    line = json.loads(JsonFormatter().format(_record()))
    assert (line["level"], line["logger"], line["msg"]) == ("INFO", "sidecar.authorization", "deny")
    assert (line["reason"], line["jti"]) == ("expired", "j-1")


def test_text_line_has_extras() -> None:
    """A text log line ends with key=value pairs of the extra fields."""
    line = TextFormatter().format(_record())
    assert "deny" in line and "reason=expired" in line and "jti=j-1" in line
