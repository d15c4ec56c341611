"""Lockout counters know their in-flight attempts: ``pending`` and ``pending_until``.

An attempt reserves a slot (``pending``) before its password is verified and turns it into a
failure or gives it back afterwards, so concurrent attempts can never verify more guesses than
the threshold, while concurrent right passwords are not mistaken for guesses.
``pending_until`` lets a slot left behind by a process that died mid-verification expire.

Revision ID: 0003_lockout_pending
Revises: 0002_identity_uid
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_lockout_pending"
down_revision = "0002_identity_uid"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lockouts") as batch:
        batch.add_column(sa.Column("pending", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("pending_until", sa.Float, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("lockouts") as batch:
        batch.drop_column("pending_until")
        batch.drop_column("pending")
