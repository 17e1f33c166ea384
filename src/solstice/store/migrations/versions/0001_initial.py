"""Plugins, API tokens and the audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from solstice.store.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "plugins",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("command", sa.String(2048), nullable=False),
        sa.Column("oci_reference", sa.String(2048), nullable=True),
        sa.Column("hook_type", sa.String(32), nullable=False),
        sa.Column("hook_types", JSONType, nullable=False),
        sa.Column("plugin_type", sa.String(32), nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("namespace", sa.String(100), nullable=False),
        sa.Column("checksum", sa.String(80), nullable=True),
        sa.Column("timeout_ms", sa.Integer, nullable=False),
        sa.Column("failure_policy", sa.String(16), nullable=True),
        sa.Column("env", JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("warnings", JSONType, nullable=False),
        sa.Column("digest", sa.String(100), nullable=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_plugins_slug", "plugins", ["slug"], unique=True)
    op.create_index("ix_plugins_is_active", "plugins", ["is_active"])
    op.create_index("ix_plugins_namespace", "plugins", ["namespace"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_used_at", UTCDateTime, nullable=True),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_api_tokens_token_hash", "api_tokens", ["token_hash"], unique=True)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(120), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("api_tokens")
    op.drop_table("plugins")
