"""The sidecar logs through the shared formatters of :mod:`native_iam.logs` (one schema for both
roles, secrets redacted, one line per record); this name stays for existing imports.

Records never carry a token: callers log the deny reason and the ``jti`` only.
"""

from __future__ import annotations

from native_iam.logs import JsonFormatter, TextFormatter, configure

__all__ = ["JsonFormatter", "TextFormatter", "configure"]
