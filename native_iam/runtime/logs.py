"""Logging of both roles: one schema, one JSON object or one text line per record, no secrets.

The token service and the sidecar log through these formatters (``NATIVE_IAM_LOG_FORMAT``):

- ``json``: ``{"ts", "level", "logger", "msg", <extra fields>, "exc"}``, one object per line;
- ``text``: ``TS LEVEL logger: msg key=value ... exc=...``, one line per record.

Log calls pass context in ``extra``. Fields whose name says secret are replaced by
``[redacted]`` and JWT-shaped strings by ``[token]`` wherever they appear, as a last line of
defence. Values can come from a client (an identity name, a subscriber name), so a record can
never span lines: in the text format every control character (C0, DEL, C1), backslash and the
Unicode line and paragraph separators are escaped; JSON escapes C0 itself and the separators
(which ``str.splitlines`` and JavaScript break lines on) are escaped here too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "JsonFormatter", "TextFormatter", "configure", "escape", "redact"]

#: Values of NATIVE_IAM_LOG_LEVEL and NATIVE_IAM_LOG_FORMAT (either case).
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("json", "text")

SECRET_KEYS = frozenset(
    {"password", "access_token", "refresh_token", "token", "authorization", "secret", "client_secret", "private_pem"}
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES = str.maketrans(
    {
        **{chr(c): f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))},
        "\u2028": "\\u2028",
        "\u2029": "\\u2029",
        **_NAMED,
    }
)
# Line breaks that json.dumps(ensure_ascii=False) leaves as they are.
_JSON_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
# A text value is quoted when it could otherwise read as more than one key=value pair.
_NEEDS_QUOTES = re.compile(r'[\s="]')


def redact(value: Any) -> Any:
    """``value`` with JWT-shaped substrings masked (strings only)."""
    if isinstance(value, str):
        return _JWT.sub("[token]", value)
    return value


def escape(text: str) -> str:
    """``text`` on one line: control characters, backslash and U+2028/2029 as escapes."""
    return text.translate(_ESCAPES)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's ``extra`` fields (None omitted), secret-named ones redacted."""
    return {
        key: "[redacted]" if key.lower() in SECRET_KEYS else redact(value)
        for key, value in vars(record).items()
        if key not in _STANDARD and not key.startswith("_") and value is not None
    }


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
            **_fields(record),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False).translate(_JSON_LINE_BREAKS)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if record.exc_info:
            # The traceback too stays on the record's line: its messages may quote client input.
            fields["exc"] = redact(self.formatException(record.exc_info))
        line = f"{_timestamp(record)} {record.levelname} {escape(record.name)}: {escape(redact(record.getMessage()))}"
        return " ".join([line, *(f"{escape(key)}={_text_value(value)}" for key, value in fields.items())])


def _text_value(value: Any) -> str:
    text = escape(str(value))
    if _NEEDS_QUOTES.search(text) or not text:
        return '"' + text.replace('"', '\\"') + '"'
    return text


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Install one stderr handler on the root logger (idempotent: replaces the one installed before)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_native_iam", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler._native_iam = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
