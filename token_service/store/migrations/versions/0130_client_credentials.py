"""Client credentials (issue 13): a scope policy and an ``enabled`` flag per OAuth client, client
tokens without an identity, and revocations of a whole client.

* ``oauth_clients.scopes``: the client's own policy (space-separated, an identity policy's
  grammar). Existing clients get an empty one: the grant is enabled explicitly, never by upgrade.
* ``oauth_clients.enabled``: existing clients stay enabled.
* ``tokens.identity_id`` becomes nullable: NULL for a client's own token (``sub_kind`` client).
* ``revocations.client_id``: the subject of target CLIENT events (feed.proto).

Revision ID: 0130_client_credentials
Revises: 0120_token_client_id_length
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0130_client_credentials"
down_revision = "0120_token_client_id_length"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("scopes", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()))
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("identity_id", existing_type=sa.Integer, nullable=True)
    with op.batch_alter_table("revocations") as batch:
        batch.add_column(sa.Column("client_id", sa.String(255), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("revocations") as batch:
        batch.drop_column("client_id")
    # Client tokens have no identity to fall back to: they go with the downgrade.
    op.execute(sa.text("DELETE FROM tokens WHERE identity_id IS NULL"))
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("identity_id", existing_type=sa.Integer, nullable=False)
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("enabled")
        batch.drop_column("scopes")
