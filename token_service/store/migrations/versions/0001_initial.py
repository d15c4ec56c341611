"""Initial schema: identities, passwords, policies, tokens, signing keys, revocation feed, lockouts.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("namespace", sa.String(253), nullable=False, server_default=""),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("disabled_at", sa.Float, nullable=True),
        sa.Column("policy_cutoff_at", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_identities"),
        sa.UniqueConstraint("namespace", "name", name="uq_identities_namespace_name"),
    )
    op.create_table(
        "passwords",
        sa.Column("identity_id", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(255), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("identity_id", name="pk_passwords"),
        sa.ForeignKeyConstraint(
            ["identity_id"], ["identities.id"], ondelete="CASCADE", name="fk_passwords_identity_id_identities"
        ),
    )
    op.create_table(
        "policies",
        sa.Column("identity_id", sa.Integer, nullable=False),
        sa.Column("grants", sa.Text, nullable=False, server_default=""),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("identity_id", name="pk_policies"),
        sa.ForeignKeyConstraint(
            ["identity_id"], ["identities.id"], ondelete="CASCADE", name="fk_policies_identity_id_identities"
        ),
    )
    op.create_table(
        "tokens",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("usage", sa.String(16), nullable=False),
        sa.Column("identity_id", sa.Integer, nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("identity", sa.String(253), nullable=False),
        sa.Column("client_id", sa.String(253), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False, server_default=""),
        sa.Column("kid", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="active"),
        sa.Column("family_id", sa.String(64), nullable=True),
        sa.Column("parent_jti", sa.String(64), nullable=True),
        sa.Column("spent_at", sa.Float, nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("jti", name="pk_tokens"),
    )
    op.create_index("ix_tokens_namespace_identity_created_at", "tokens", ["namespace", "identity", "created_at"])
    op.create_index("ix_tokens_identity_id", "tokens", ["identity_id"])
    op.create_index("ix_tokens_family_id", "tokens", ["family_id"])
    op.create_index("ix_tokens_expires_at", "tokens", ["expires_at"])
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(128), nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("private_pem", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("publish_at", sa.Float, nullable=False),
        sa.Column("activate_at", sa.Float, nullable=False),
        sa.Column("retire_at", sa.Float, nullable=True),
        sa.Column("expire_at", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
    )
    op.create_table(
        "revocations",
        sa.Column("sequence", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False, autoincrement=False),
        sa.Column("target", sa.Integer, nullable=False),
        sa.Column("reason", sa.Integer, nullable=False),
        sa.Column("jti", sa.String(64), nullable=False, server_default=""),
        sa.Column("namespace", sa.String(253), nullable=False, server_default=""),
        sa.Column("identity", sa.String(253), nullable=False, server_default=""),
        sa.Column("kid", sa.String(128), nullable=False, server_default=""),
        sa.Column("cutoff_unix", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("expires_unix", sa.BigInteger, nullable=False),
        sa.Column("lifted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("sequence", name="pk_revocations"),
    )
    op.create_index("ix_revocations_expires_unix", "revocations", ["expires_unix"])
    op.create_table(
        "feed_counter",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.Column("compacted_through", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_feed_counter"),
    )
    op.execute("INSERT INTO feed_counter (id, last_sequence, compacted_through) VALUES (1, 0, 0)")
    op.create_table(
        "lockouts",
        sa.Column("key", sa.String(600), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failure_at", sa.Float, nullable=False),
        sa.Column("locked_until", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_lockouts"),
    )


def downgrade() -> None:
    for table in ("lockouts", "feed_counter", "revocations", "signing_keys", "tokens", "policies", "passwords"):
        op.drop_table(table)
    op.drop_table("identities")
