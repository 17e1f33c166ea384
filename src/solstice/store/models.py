"""Database tables: plugins and their scopes, data and schedules, LLMs, apps, tokens, edges, the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored with its zone where the database can, and always read back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # SQLite keeps no zone; we only ever write UTC
        return value


JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Base of every table."""


class PluginRow(Base):
    """A registered plugin: its definition, and the last status a start attempt recorded."""

    __tablename__ = "plugins"
    # Ids are never reused, so a stale reference cannot point at a newer row.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    command: Mapped[str] = mapped_column(String(2048))
    oci_reference: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    hook_type: Mapped[str] = mapped_column(String(32))
    hook_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    plugin_type: Mapped[str] = mapped_column(String(32), default="gateway")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    namespace: Mapped[str] = mapped_column(String(100), default="", index=True)
    checksum: Mapped[str | None] = mapped_column(String(80), nullable=True)
    timeout_ms: Mapped[int] = mapped_column(Integer, default=1000)
    failure_policy: Mapped[str | None] = mapped_column(String(16), nullable=True)
    env: Mapped[list[str]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(16), default="stopped")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    warnings: Mapped[list[str]] = mapped_column(JSONType, default=list)
    digest: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # The host service API scopes the plugin declared when it last started here.
    requested_scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # The object hooks it registered when it last started here: [{object_type, events, priority}].
    object_hooks: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # A global plugin runs on every LLM, before the LLM's own chain.
    is_global: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped by every change that needs running instances to reload (several servers may share a database).
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PluginScopeRow(Base):
    """A host service API scope an operator approved for a plugin."""

    __tablename__ = "plugin_scopes"

    plugin_id: Mapped[int] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    approved_by: Mapped[str] = mapped_column(String(120))
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Byte order on PostgreSQL too, so listings page the same way on both databases.
KvKeyType = String(512).with_variant(String(512, collation="C"), "postgresql")


class PluginKvRow(Base):
    """One key of a plugin's own key-value data."""

    __tablename__ = "plugin_kv"

    plugin_id: Mapped[int] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(KvKeyType, primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    # Key and value bytes: what the entry counts against the plugin's total.
    size: Mapped[int] = mapped_column(Integer)
    # Milliseconds since the epoch; null: never expires.
    expires_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ScheduleRow(Base):
    """A schedule of a plugin: when its task runs, with which config."""

    __tablename__ = "plugin_schedules"
    __table_args__ = (
        UniqueConstraint("plugin_id", "key", name="uq_plugin_schedules_plugin_key"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plugin_id: Mapped[int] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"), index=True)
    # The schedule's id within its plugin (Schedule.id of a declared one).
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    timeout_s: Mapped[int] = mapped_column(Integer, default=60)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    catch_up: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Declared by the plugin now; and whose values are an operator's (added through the API, or
    # changed since the plugin declared it), which a declaration does not overwrite.
    declared: Mapped[bool] = mapped_column(Boolean, default=False)
    customized: Mapped[bool] = mapped_column(Boolean, default=False)
    # The due time of the next run; a server claims it by moving it on (null while disabled).
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ScheduleRunRow(Base):
    """One due time of a schedule: run, running, or skipped, and how it ended."""

    __tablename__ = "schedule_runs"
    __table_args__ = (
        # One run per due time, whichever server claims it.
        UniqueConstraint("schedule_id", "due_at", name="uq_schedule_runs_schedule_due"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[int] = mapped_column(
        ForeignKey("plugin_schedules.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[str] = mapped_column(String(40), unique=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    catch_up: Mapped[bool] = mapped_column(Boolean, default=False)
    # running, succeeded, failed, timed_out or skipped.
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text, default="")
    # The server running it, when that server last said it still does, and until when that holds
    # (three of that server's heartbeat intervals): a run past it is another server's to fail.
    server: Mapped[str] = mapped_column(String(64), default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ObjectDeliveryRow(Base):
    """An after_* object hook notification not yet taken by its plugin (delivered at least once)."""

    __tablename__ = "object_deliveries"
    # Ids give the order of one object's notifications: never reused.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plugin_id: Mapped[int] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"), index=True)
    delivery_id: Mapped[str] = mapped_column(String(40), unique=True)
    event: Mapped[str] = mapped_column(String(20))
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[str] = mapped_column(String(40))
    object_json: Mapped[str] = mapped_column(Text)
    previous_json: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(120), default="")
    request_id: Mapped[str] = mapped_column(String(128), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # The server delivering it, until when (another server may take it after).
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TokenRow(Base):
    """An API token; only the SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"
    # Ids are never reused, so a stale reference cannot point at a newer row.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    # The first characters of the token, so a person can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditRow(Base):
    """One plugin or token operation: who did what, when, and how it ended."""

    __tablename__ = "audit_log"
    # Ids are never reused, so a stale reference cannot point at a newer row.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(120))
    result: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")


class LLMRow(Base):
    """An upstream LLM the gateway serves under /llm/{slug}/."""

    __tablename__ = "llms"
    # Ids are never reused, so a stale reference cannot point at a newer row.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    vendor: Mapped[str] = mapped_column(String(32))
    upstream_url: Mapped[str] = mapped_column(String(2048), default="")
    # Sent upstream as the bearer token; never returned by the API.
    api_key: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # "" is global: every edge serves it; otherwise only the edges of this namespace.
    namespace: Mapped[str] = mapped_column(String(100), default="", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LLMPluginRow(Base):
    """One plugin in an LLM's chain, with per-LLM overrides."""

    __tablename__ = "llm_plugins"
    __table_args__ = (
        UniqueConstraint("llm_id", "plugin_id", name="uq_llm_plugins_llm_plugin"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    llm_id: Mapped[int] = mapped_column(ForeignKey("llms.id", ondelete="CASCADE"), index=True)
    plugin_id: Mapped[int] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    config_override: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    timeout_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    failure_policy: Mapped[str | None] = mapped_column(String(16), nullable=True)


class AppRow(Base):
    """A client application: which LLMs it may call."""

    __tablename__ = "apps"
    # Ids are never reused, so a stale reference cannot point at a newer row.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    llm_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    # Slugs of the agent plugins it may chat with at /agents/{slug}/chat.
    agents: Mapped[list[str]] = mapped_column(JSONType, default=list)
    namespace: Mapped[str] = mapped_column(String(100), default="", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AppKeyRow(Base):
    """An API key of an app; only its SHA-256 is stored."""

    __tablename__ = "app_keys"
    # Ids are never reused, so a stale reference cannot point at a newer row.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EdgeRow(Base):
    """An edge gateway, as its syncs report it; every sync is its heartbeat."""

    __tablename__ = "edges"

    # Chosen by the edge (stable across its restarts).
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    namespace: Mapped[str] = mapped_column(String(100), default="", index=True)
    address: Mapped[str] = mapped_column(String(200), default="")
    # The snapshot version (ETag) the edge says it runs.
    applied_version: Mapped[str] = mapped_column(String(64), default="")
    # Bumped by a reload request; part of the edge's snapshot version, so it wakes the edge.
    reload_generation: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
