"""Plugins' schedules and the history of their runs.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from solstice.store.models import JSONType, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plugin_schedules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("plugin_id", sa.Integer, sa.ForeignKey("plugins.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("timeout_s", sa.Integer, nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("catch_up", sa.Boolean, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("declared", sa.Boolean, nullable=False),
        sa.Column("customized", sa.Boolean, nullable=False),
        sa.Column("next_run_at", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("plugin_id", "key", name="uq_plugin_schedules_plugin_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_plugin_schedules_plugin_id", "plugin_schedules", ["plugin_id"])
    op.create_index("ix_plugin_schedules_next_run_at", "plugin_schedules", ["next_run_at"])
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "schedule_id",
            sa.Integer,
            sa.ForeignKey("plugin_schedules.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("run_id", sa.String(40), nullable=False, unique=True),
        sa.Column("due_at", UTCDateTime, nullable=False),
        sa.Column("catch_up", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("server", sa.String(64), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime, nullable=True),
        sa.Column("lease_until", UTCDateTime, nullable=True),
        sa.UniqueConstraint("schedule_id", "due_at", name="uq_schedule_runs_schedule_due"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_schedule_runs_schedule_id", "schedule_runs", ["schedule_id"])
    op.create_index("ix_schedule_runs_status", "schedule_runs", ["status"])


def downgrade() -> None:
    op.drop_table("schedule_runs")
    op.drop_table("plugin_schedules")
