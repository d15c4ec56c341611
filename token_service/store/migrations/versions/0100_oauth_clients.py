"""OAuth clients of the HTTP token endpoint, and server-generated secrets (the client-secret HMAC key).

Numbered 0100 so that it never collides with the core's own sequence (0001, 0002, …); it
revises the newest core migration at the time it was written.

Revision ID: 0100
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0100"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("auth_method", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=True),
        sa.Column("grant_types", sa.Text, nullable=False),
        sa.Column("audiences", sa.Text, nullable=False, server_default="[]"),
        sa.Column("access_token_ttl_s", sa.Integer, nullable=True),
        sa.Column("refresh_token_ttl_s", sa.Integer, nullable=True),
        sa.Column("rotate_refresh_tokens", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_oauth_clients"),
    )
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_server_secrets"),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    op.drop_table("oauth_clients")
