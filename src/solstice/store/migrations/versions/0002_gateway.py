"""LLMs, their plugin chains, apps and app keys; global plugins.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from solstice.store.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("plugins") as batch:
        batch.add_column(sa.Column("is_global", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "llms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("vendor", sa.String(32), nullable=False),
        sa.Column("upstream_url", sa.String(2048), nullable=False),
        sa.Column("api_key", sa.Text, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("options", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_llms_slug", "llms", ["slug"], unique=True)
    op.create_table(
        "llm_plugins",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("llm_id", sa.Integer, sa.ForeignKey("llms.id", ondelete="CASCADE"), nullable=False),
        sa.Column("plugin_id", sa.Integer, sa.ForeignKey("plugins.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("config_override", JSONType, nullable=False),
        sa.Column("timeout_ms", sa.Integer, nullable=True),
        sa.Column("failure_policy", sa.String(16), nullable=True),
        sa.UniqueConstraint("llm_id", "plugin_id", name="uq_llm_plugins_llm_plugin"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_llm_plugins_llm_id", "llm_plugins", ["llm_id"])
    op.create_index("ix_llm_plugins_plugin_id", "llm_plugins", ["plugin_id"])
    op.create_table(
        "apps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("llm_ids", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "app_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.Integer, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_app_keys_app_id", "app_keys", ["app_id"])
    op.create_index("ix_app_keys_key_hash", "app_keys", ["key_hash"], unique=True)


def downgrade() -> None:
    op.drop_table("app_keys")
    op.drop_table("apps")
    op.drop_table("llm_plugins")
    op.drop_table("llms")
    with op.batch_alter_table("plugins") as batch:
        batch.drop_column("is_global")
