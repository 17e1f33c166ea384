"""Ids are never reused: SQLite tables rebuilt with AUTOINCREMENT, keeping their rows and highest id.

A table rebuilt by an earlier batch migration (plugins, in 0002) lost AUTOINCREMENT, so SQLite
handed a deleted plugin's id to the next one. PostgreSQL sequences never go back, but rows stored
with explicit ids (a restore) do not advance them: each sequence is moved past the highest id.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Every table whose integer id the API shows or stores elsewhere.
TABLES = ("plugins", "api_tokens", "audit_log", "llms", "llm_plugins", "apps", "app_keys")


def _without_autoincrement(bind: sa.Connection) -> list[str]:
    found = []
    for table in TABLES:
        sql = bind.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"), {"name": table}
        ).scalar_one_or_none()
        if sql is not None and "AUTOINCREMENT" not in sql.upper():
            found.append(table)
    return found


def _children(bind: sa.Connection, table: str) -> list[str]:
    """Tables with a foreign key to `table`: dropping it would cascade into them."""
    return [
        name
        for name in TABLES
        if any(row[2] == table for row in bind.execute(sa.text(f'PRAGMA foreign_key_list("{name}")')))
    ]


def _rebuild(bind: sa.Connection, table: str) -> None:
    # A rebuild drops the old table; with foreign keys on, that deletes the rows that point at it
    # (ON DELETE CASCADE), and the pragma cannot be switched off inside the migration's transaction.
    kept = _children(bind, table)
    for child in kept:
        bind.execute(sa.text(f'CREATE TEMP TABLE "_keep_{child}" AS SELECT * FROM "{child}"'))
    with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass  # the copy keeps every row and id; sqlite_sequence starts at the highest id copied
    for child in kept:
        bind.execute(sa.text(f'INSERT OR IGNORE INTO "{child}" SELECT * FROM "_keep_{child}"'))
        bind.execute(sa.text(f'DROP TABLE "_keep_{child}"'))


def _advance_sequences(bind: sa.Connection) -> None:
    for table in TABLES:
        sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}).scalar()
        if sequence is None:
            continue
        highest = bind.execute(sa.text(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')).scalar_one()
        last, called = bind.execute(sa.text(f"SELECT last_value, is_called FROM {sequence}")).one()
        if highest > (last if called else last - 1):
            bind.execute(sa.text("SELECT setval(:s, :v, true)"), {"s": sequence, "v": highest})


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _advance_sequences(bind)
    elif bind.dialect.name == "sqlite":
        for table in _without_autoincrement(bind):
            _rebuild(bind, table)


def downgrade() -> None:
    pass  # AUTOINCREMENT is harmless under the older schema
