"""OAuth clients: the introspection permission (RFC 7662 §4).

Without it a client introspects only its own tokens and tokens for one of its audiences.
Existing clients get ``false``: the permission is granted explicitly, never by upgrade.

Revision ID: 0110
Revises: 0100
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0110"
down_revision = "0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("introspect_all_tokens", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("introspect_all_tokens")
