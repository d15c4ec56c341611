"""OAuth clients: the audiences a client may exchange a user's access token for (RFC 8693).

Existing clients get ``[]``: no client may exchange tokens until an admin says for which audience.

Revision ID: 0140_token_exchange
Revises: 0120_token_client_id_length
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0140_token_exchange"
down_revision = "0120_token_client_id_length"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("exchange_audiences", sa.Text, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("exchange_audiences")
