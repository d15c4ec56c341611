"""The token service logs through the shared formatters of :mod:`native_iam.logs` (one schema for
both roles, secrets redacted, one line per record); this name stays for existing imports."""

from __future__ import annotations

from native_iam.logs import JsonFormatter, TextFormatter, configure, escape, redact

__all__ = ["JsonFormatter", "TextFormatter", "configure", "escape", "redact"]
