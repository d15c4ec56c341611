"""Persistence: SQLAlchemy Core tables, Alembic migrations and transaction helpers."""

from token_service.store.db import Store, async_url

__all__ = ["Store", "async_url"]
