"""Identity ids are never reused, and tokens are bound to their identity's random ``uid``.

SQLite reuses the highest deleted ``INTEGER PRIMARY KEY`` unless the table is AUTOINCREMENT, and
tokens referenced their identity only by that id: a deleted identity's tokens came back attached
to the next identity created. This migration

* adds ``identities.uid`` (random, immutable, unique) and ``tokens.identity_uid``;
* attributes each existing token to the identity now holding its id only when the name matches
  and the token was not issued before that identity row was created: a token an earlier, deleted
  identity left on a reused id keeps ``identity_uid`` NULL, which never matches, so it stays dead;
* on SQLite rebuilds ``identities`` with AUTOINCREMENT and starts its sequence above every id a
  token ever referenced (ids of identities deleted before the migration included).

PostgreSQL's serial sequence never hands an id out twice, so there only the columns are added.

Revision ID: 0002_identity_uid
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002_identity_uid"
down_revision = "0001"
branch_labels = None
depends_on = None

#: Tables whose rows cascade from ``identities``: SQLite's DROP TABLE in the rebuild deletes them.
_DEPENDENTS = ("passwords", "policies")


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("identities", sa.Column("uid", sa.String(32), nullable=True))
    op.add_column("tokens", sa.Column("identity_uid", sa.String(32), nullable=True))
    for (identity_id,) in bind.execute(sa.text("SELECT id FROM identities")).all():
        bind.execute(
            sa.text("UPDATE identities SET uid = :uid WHERE id = :id"),
            {"uid": secrets.token_hex(16), "id": identity_id},
        )
    # tokens.created_at is the whole second of issue, so a token of this identity has
    # created_at > identities.created_at - 1; an earlier identity's token on the same id, issued
    # before this row existed, fails that (or the name check) and keeps a NULL identity_uid.
    bind.execute(
        sa.text(
            "UPDATE tokens SET identity_uid = (SELECT i.uid FROM identities i WHERE i.id = tokens.identity_id"
            " AND i.namespace = tokens.namespace AND i.name = tokens.identity"
            " AND tokens.created_at > i.created_at - 1)"
        )
    )
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        _save_dependents(bind)
    # On SQLite this rebuilds the table (copying ids as they are) with AUTOINCREMENT.
    with op.batch_alter_table("identities", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("uid", existing_type=sa.String(32), nullable=False)
        batch.create_unique_constraint("uq_identities_uid", ["uid"])
    if sqlite:
        _restore_dependents(bind)
        _start_sequence_above_every_referenced_id(bind)


def _save_dependents(bind: sa.Connection) -> None:
    # PRAGMA foreign_keys cannot be switched off inside the migration's transaction, so the
    # rebuild's DROP TABLE cascades: keep the rows aside and put them back.
    for table in _DEPENDENTS:
        bind.execute(sa.text(f"CREATE TEMP TABLE _saved_{table} AS SELECT * FROM {table}"))  # noqa: S608 (constant names)


def _restore_dependents(bind: sa.Connection) -> None:
    for table in _DEPENDENTS:
        bind.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 (constant names)
        bind.execute(sa.text(f"INSERT INTO {table} SELECT * FROM _saved_{table}"))  # noqa: S608
        bind.execute(sa.text(f"DROP TABLE _saved_{table}"))


def _start_sequence_above_every_referenced_id(bind: sa.Connection) -> None:
    highest = bind.execute(
        sa.text(
            "SELECT max(coalesce((SELECT max(id) FROM identities), 0),"
            " coalesce((SELECT max(identity_id) FROM tokens), 0))"
        )
    ).scalar_one()
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'identities'"))
    bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('identities', :seq)"), {"seq": highest})


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("identity_uid")
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        _save_dependents(op.get_bind())
    with op.batch_alter_table("identities") as batch:
        batch.drop_constraint("uq_identities_uid", type_="unique")
        batch.drop_column("uid")
    if sqlite:
        _restore_dependents(op.get_bind())
