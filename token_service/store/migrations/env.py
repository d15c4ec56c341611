"""Alembic environment: migrations run on the connection the token service hands over."""

from __future__ import annotations

from alembic import context

from token_service.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through token_service.store.db.Store.migrate()")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
