"""Tokens hold any registered ``client_id``: ``tokens.client_id`` widened from 253 to 255 characters.

OAuth clients accept ids of up to ``native_iam.limits.MAX_CLIENT_ID_LENGTH`` (255) characters
(``oauth_clients.client_id`` is 255 wide), but the tokens issued to them recorded the id in a
253-character column: on PostgreSQL a grant for a client with a longer id failed with a 500.

Revision ID: 0120_token_client_id_length
Revises: 0110
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0120_token_client_id_length"
down_revision = "0110"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("client_id", existing_type=sa.String(253), type_=sa.String(255), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("client_id", existing_type=sa.String(255), type_=sa.String(253), existing_nullable=False)
