"""Short-lived values: table ``short_lived`` (token_service/shortlived.py).

Codes, login sessions, nonces and single-use assertion ``jti`` s on the database when no
``SYSTEM_CACHE_URL`` is set. Its own branch off the core sequence, like the OAuth clients' (0100).

Revision ID: 0200_short_lived
Revises: 0003_lockout_pending
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0200_short_lived"
down_revision = "0003_lockout_pending"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "short_lived",
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name="pk_short_lived"),
    )
    op.create_index("ix_short_lived_expires_at", "short_lived", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_short_lived_expires_at", table_name="short_lived")
    op.drop_table("short_lived")
