"""Object hooks: each plugin's registrations, and the after_* notifications waiting for delivery;
the agents each app may chat with.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from solstice.store.models import JSONType, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch rebuild of `plugins` on SQLite would drop its AUTOINCREMENT (0005).
    op.add_column("plugins", sa.Column("object_hooks", JSONType, nullable=False, server_default="[]"))
    op.add_column("apps", sa.Column("agents", JSONType, nullable=False, server_default="[]"))
    op.create_table(
        "object_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("plugin_id", sa.Integer, sa.ForeignKey("plugins.id", ondelete="CASCADE"), nullable=False),
        sa.Column("delivery_id", sa.String(40), nullable=False, unique=True),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("object_type", sa.String(16), nullable=False),
        sa.Column("object_id", sa.String(40), nullable=False),
        sa.Column("object_json", sa.Text, nullable=False),
        sa.Column("previous_json", sa.Text, nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=False),
        sa.Column("claimed_until", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_object_deliveries_plugin_id", "object_deliveries", ["plugin_id"])
    op.create_index("ix_object_deliveries_next_attempt_at", "object_deliveries", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_table("object_deliveries")
    with op.batch_alter_table("apps", recreate="never") as batch:
        batch.drop_column("agents")
    with op.batch_alter_table("plugins", recreate="never") as batch:
        batch.drop_column("object_hooks")
