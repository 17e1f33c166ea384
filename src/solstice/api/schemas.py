"""Request and response bodies of the REST API."""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from solstice.cron import MAX_TIMEOUT_S, SCHEDULE_ID
from solstice.hooks import PLUGIN_HOOKS, FailurePolicy, PluginType
from solstice.safejson import JSONObject
from solstice.scopes import SCOPES
from solstice.security.variables import refusal as secret_refusal
from solstice.snapshot import SLUG_PATTERN

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHA256 = re.compile(r"^(sha256:)?[0-9a-fA-F]{64}$")
# Slugs that would collide with fixed routes under /api/v1/plugins/.
RESERVED_SLUGS = frozenset({"health"})
# Request bodies: unknown fields are errors, and values are never coerced (true is not 1, "5" is not 5).
INPUT = ConfigDict(extra="forbid", strict=True)
_VALID_HOOKS = ", ".join(PLUGIN_HOOKS)


def _check_hook(value: str) -> str:
    if value not in PLUGIN_HOOKS:
        raise ValueError(f"hook type {value!r} is invalid; valid hook types: {_VALID_HOOKS}")
    return value


class PluginFields(BaseModel):
    """Fields a client may write; every one optional (PATCH)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)

    name: str | None = Field(None, min_length=1, max_length=200)
    slug: str | None = Field(None, pattern=SLUG_PATTERN)
    description: str | None = Field(None, max_length=10_000)
    command: str | None = Field(None, min_length=1, max_length=2048)
    oci_reference: str | None = Field(None, max_length=2048)
    hook_type: str | None = Field(None, json_schema_extra={"enum": [*PLUGIN_HOOKS, None]})
    hook_types: list[str] | None = Field(
        None,
        min_length=1,
        max_length=len(PLUGIN_HOOKS),
        json_schema_extra={"items": {"enum": list(PLUGIN_HOOKS)}},
    )
    plugin_type: PluginType | None = None
    is_active: bool | None = None
    config: JSONObject | None = None
    namespace: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9_.-]*$")
    checksum: str | None = None
    timeout_ms: int | None = Field(None, ge=1, le=600_000)
    failure_policy: FailurePolicy | None = None
    env: list[str] | None = Field(None, max_length=100)
    is_global: bool | None = Field(None, alias="global", description="Run on every LLM, before its chain.")

    @field_validator("hook_type")
    @classmethod
    def _hook_type(cls, value: str | None) -> str | None:
        return None if value is None else _check_hook(value)

    @field_validator("hook_types")
    @classmethod
    def _hook_types(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for hook in value:
            _check_hook(hook)
        if len(set(value)) != len(value):
            raise ValueError("hook_types lists a hook twice; list each hook once")
        return value

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value in RESERVED_SLUGS:
            raise ValueError(f"slug {value!r} is reserved; choose another slug")
        return value

    @field_validator("checksum")
    @classmethod
    def _checksum(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not _SHA256.match(value):
            raise ValueError(
                "checksum must be the file's SHA-256 as 64 hex digits, optionally prefixed sha256:"
            )
        return value.lower()

    @field_validator("env")
    @classmethod
    def _env(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not _ENV_NAME.match(name):
                raise ValueError(f"env entry {name!r} is not a variable name; list names like MY_API_KEY")
            # The server's environment: registry credentials may name the variables they read from.
            refused = secret_refusal(name, os.environ)
            if refused:
                raise ValueError(refused)
        return value


class PluginCreate(PluginFields):
    """Body of POST: name and command are required, the rest has defaults."""

    name: str = Field(min_length=1, max_length=200)
    command: str = Field(min_length=1, max_length=2048)

    @model_validator(mode="after")
    def _hooks_given(self) -> PluginCreate:
        if self.hook_type is None and not self.hook_types:
            raise ValueError(f"hook_type is required; valid hook types: {_VALID_HOOKS}")
        return self


class PluginOut(BaseModel):
    """A plugin as the API returns it."""

    model_config = ConfigDict(populate_by_name=True)

    id: int
    name: str
    slug: str
    description: str
    command: str
    oci_reference: str | None
    hook_type: str
    hook_types: list[str]
    plugin_type: str
    is_active: bool
    config: dict[str, Any]
    namespace: str
    checksum: str | None
    timeout_ms: int
    failure_policy: str
    env: list[str]
    is_global: bool = Field(alias="global", serialization_alias="global")
    status: str
    last_error: str | None
    warnings: list[str]
    digest: str | None
    # custom_endpoint: the routes the running instance serves under /plugins/{slug}/.
    routes: list[RouteOut]
    # Host service API scopes the plugin asks for, and those of them no operator approved yet.
    requested_scopes: list[str]
    pending_scopes: list[str]
    created_at: datetime
    updated_at: datetime


class RouteOut(BaseModel):
    """A route a plugin serves."""

    path: str
    methods: list[str]
    description: str
    require_auth: bool
    stream: bool


class ScopeApproval(BaseModel):
    """One approved scope: by whom and when."""

    scope: str
    approved_by: str
    approved_at: datetime


class PluginScopes(BaseModel):
    """A plugin's host service API scopes."""

    plugin: str
    requested: list[str]
    approved: list[ScopeApproval]
    pending: list[str]


class ScopeChange(BaseModel):
    """Scopes to approve or revoke."""

    model_config = INPUT

    scopes: list[str] = Field(max_length=len(SCOPES))


class ScheduleFieldsIn(BaseModel):
    """Fields of a schedule a client may write; every one optional (PATCH)."""

    model_config = INPUT

    name: str | None = Field(None, min_length=1, max_length=200)
    cron: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Five fields (minute hour day month weekday), six with seconds first, or a macro.",
    )
    timezone: str | None = Field(
        None, min_length=1, max_length=64, description="IANA time zone; default UTC."
    )
    timeout_seconds: int | None = Field(None, ge=1, le=MAX_TIMEOUT_S, description="Deadline of one run.")
    config: JSONObject | None = Field(None, description="Handed to every run.")
    catch_up: bool | None = Field(
        None, description="Run once at start for a due time missed while no server ran (else skip it)."
    )
    enabled: bool | None = None


class ScheduleCreate(ScheduleFieldsIn):
    """A schedule added through the API."""

    id: str = Field(pattern=SCHEDULE_ID.pattern, description="Names the schedule within its plugin.")
    cron: str = Field(min_length=1, max_length=200)


class ScheduleRunOut(BaseModel):
    """One run of a schedule."""

    run_id: str
    due_at: datetime
    status: str
    catch_up: bool
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    error: str
    message: str
    server: str


class ScheduleOut(BaseModel):
    """A plugin's schedule."""

    id: str
    plugin: str
    name: str
    cron: str
    timezone: str
    timeout_seconds: int
    config: dict[str, Any]
    catch_up: bool
    enabled: bool
    declared: bool = Field(description="Declared by the plugin (else added through the API).")
    customized: bool = Field(description="Changed by an operator since the plugin declared it.")
    next_run_at: datetime | None
    last_run: ScheduleRunOut | None


class ScheduleList(BaseModel):
    """A plugin's schedules."""

    data: list[ScheduleOut]


class ScheduleRuns(BaseModel):
    """A page of a schedule's runs, newest first."""

    plugin: str
    schedule: str
    data: list[ScheduleRunOut]
    limit: int
    offset: int


class DataCleared(BaseModel):
    """What DELETE /plugins/{id}/data removed."""

    plugin: str
    deleted_keys: int


class PluginPage(BaseModel):
    """One page of the plugin list."""

    data: list[PluginOut]
    total: int
    limit: int
    offset: int


class PluginHealth(BaseModel):
    """Runtime health of one plugin."""

    id: int
    slug: str
    status: str
    last_check_at: datetime | None
    last_check_latency_ms: float | None
    restarts: int
    uptime_s: float | None
    pid: int | None
    digest: str | None
    last_error: str | None


class HealthSummary(BaseModel):
    """Counts of plugins by status."""

    total: int
    by_status: dict[str, int]


class HealthReport(BaseModel):
    """Health of every plugin."""

    plugins: list[PluginHealth]
    summary: HealthSummary


class TokenCreate(BaseModel):
    """Body of POST /api/v1/tokens."""

    model_config = INPUT

    name: str = Field(min_length=1, max_length=100)
    scope: Literal["admin", "read", "edge"] = "read"


class TokenOut(BaseModel):
    """A token without its secret."""

    id: int
    name: str
    scope: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    """A new token, with its secret: shown this once."""

    token: str


class AuditEntry(BaseModel):
    """One audit log entry."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    result: str
    detail: str
