"""Fixtures for the security tests: the token service's own, reused as they are."""

from __future__ import annotations

from tests.token_service.conftest import channel, service, sqlite_url

__all__ = ["channel", "service", "sqlite_url"]
