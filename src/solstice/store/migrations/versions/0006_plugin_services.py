"""The host service API: scopes plugins request and operators approve, and each plugin's key-value data.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from solstice.store.models import JSONType, KvKeyType, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch rebuild of `plugins` on SQLite would drop its AUTOINCREMENT (0005).
    op.add_column("plugins", sa.Column("requested_scopes", JSONType, nullable=False, server_default="[]"))
    op.create_table(
        "plugin_scopes",
        sa.Column("plugin_id", sa.Integer, sa.ForeignKey("plugins.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("scope", sa.String(40), primary_key=True),
        sa.Column("approved_by", sa.String(120), nullable=False),
        sa.Column("approved_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "plugin_kv",
        sa.Column("plugin_id", sa.Integer, sa.ForeignKey("plugins.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", KvKeyType, primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("plugin_kv")
    op.drop_table("plugin_scopes")
    with op.batch_alter_table("plugins", recreate="never") as batch:
        batch.drop_column("requested_scopes")
