"""Authorization code flow (issue 14): clients' redirect URIs and first-party flag; consents.

Existing clients get no redirect URIs (so they cannot use the authorization endpoint until an
admin registers some) and are not first-party (their users would be asked for consent).

Revision ID: 0150_authorization_code
Revises: 0120_token_client_id_length
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0150_authorization_code"
down_revision = "0120_token_client_id_length"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("redirect_uris", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("post_logout_redirect_uris", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("first_party", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "consents",
        sa.Column(
            "identity_id",
            sa.Integer,
            sa.ForeignKey("identities.id", ondelete="CASCADE", name="fk_consents_identity_id_identities"),
            nullable=False,
        ),
        sa.Column(
            "client_id",
            sa.String(255),
            sa.ForeignKey("oauth_clients.client_id", ondelete="CASCADE", name="fk_consents_client_id_oauth_clients"),
            nullable=False,
        ),
        sa.Column("identity_uid", sa.String(32), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("granted_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("identity_id", "client_id", name="pk_consents"),
    )
    op.create_index("ix_consents_client_id", "consents", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_consents_client_id", table_name="consents")
    op.drop_table("consents")
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("first_party")
        batch.drop_column("post_logout_redirect_uris")
        batch.drop_column("redirect_uris")
