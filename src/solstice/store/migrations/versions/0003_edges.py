"""Namespaces for LLMs and apps, and the edges that sync their configuration from this server.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from solstice.store.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("llms", "apps"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("namespace", sa.String(100), nullable=False, server_default=""))
        op.create_index(f"ix_{table}_namespace", table, ["namespace"])
    op.create_table(
        "edges",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("namespace", sa.String(100), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("applied_version", sa.String(64), nullable=False),
        sa.Column("reload_generation", sa.Integer, nullable=False),
        sa.Column("first_seen", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
    )
    op.create_index("ix_edges_namespace", "edges", ["namespace"])


def downgrade() -> None:
    op.drop_table("edges")
    for table in ("apps", "llms"):
        op.drop_index(f"ix_{table}_namespace", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("namespace")
