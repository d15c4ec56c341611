"""Fixtures for the security tests: the token service's own, reused as they are."""

from __future__ import annotations

from tests.token_service.conftest import channel, postgres_server, service, sqlite_url

__all__ = ["channel", "postgres_server", "service", "sqlite_url"]
