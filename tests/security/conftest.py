"""Fixtures for the security tests: the token service's own, reused as they are."""

from __future__ import annotations

from tests.token_service.conftest import channel, counters_in, db_url, postgres_url, service, sqlite_url

__all__ = ["channel", "counters_in", "db_url", "postgres_url", "service", "sqlite_url"]
