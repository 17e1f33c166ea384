"""Plugins' schedules as operators and plugins change them: declared, added, changed, removed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from solstice.control.errors import ConflictError, InvalidError, NotFoundError
from solstice.control.manager import PluginManager
from solstice.control.schedule_fields import check_timeout, next_due
from solstice.cron import CronError, check_cron, check_schedule_id
from solstice.store import audit
from solstice.store import schedules as stored
from solstice.store.models import PluginRow, ScheduleRow, ScheduleRunRow, utcnow

# Fields whose change moves the next due time.
_TIMING = ("cron", "timezone", "enabled")


@dataclass(frozen=True)
class ScheduleView:
    """One schedule, the slug of its plugin, and its newest run."""

    slug: str
    row: ScheduleRow
    last_run: ScheduleRunRow | None = None


@dataclass(frozen=True)
class PluginSchedules:
    """A plugin's schedules, with the newest run of each."""

    plugin: PluginRow
    schedules: list[ScheduleRow]
    last_runs: dict[int, ScheduleRunRow]


async def list_schedules(manager: PluginManager, ref: str) -> PluginSchedules:
    """A plugin's schedules, by its id or slug."""
    plugin = await manager.get(ref)
    async with manager.sessions() as session:
        rows = await stored.schedules_of(session, plugin.id)
        last = await stored.last_runs(session, [row.id for row in rows])
    return PluginSchedules(plugin, rows, last)


async def get_schedule(manager: PluginManager, ref: str, sid: str) -> ScheduleView:
    """One schedule and its newest run."""
    plugin = await manager.get(ref)
    async with manager.sessions() as session:
        row = await _schedule(session, plugin, sid)
        last = await stored.last_runs(session, [row.id])
    return ScheduleView(plugin.slug, row, last.get(row.id))


async def _schedule(session: AsyncSession, plugin: PluginRow, sid: str) -> ScheduleRow:
    row = await stored.schedule_of(session, plugin.id, sid)
    if row is None:
        raise NotFoundError(
            f"plugin {plugin.slug} has no schedule {sid!r}; "
            f"list them with GET /api/v1/plugins/{plugin.slug}/schedules"
        )
    return row


def _checked(values: Mapping[str, Any], current: ScheduleRow | None = None) -> dict[str, Any]:
    """The changed columns, checked: a bad cron, zone, id or timeout is InvalidError."""
    merged = {
        "cron": current.cron if current else "",
        "timezone": current.timezone if current else "",
        **{k: v for k, v in values.items() if v is not None},
    }
    try:
        if "key" in values:
            check_schedule_id(values["key"])
        cron = check_cron(merged["cron"], merged["timezone"])
        if values.get("timeout_s") is not None:
            check_timeout(values["timeout_s"])
    except CronError as exc:
        raise InvalidError(str(exc)) from None
    checked = dict(values)
    if "cron" in values or "timezone" in values or current is None:
        checked["cron"], checked["timezone"] = cron.expression, cron.timezone
    return checked


async def create_schedule(
    manager: PluginManager, ref: str, values: Mapping[str, Any], actor: str
) -> ScheduleView:
    """Add a schedule to a plugin through the API. Audited."""
    plugin = await manager.get(ref)
    checked = _checked(values)
    checked.setdefault("name", checked["key"])
    now = utcnow()
    enabled = checked.get("enabled", True)
    row_values = {
        **checked,
        "plugin_id": plugin.id,
        "enabled": enabled,
        "declared": False,
        "customized": True,  # an operator's values: a declaration of the same id does not replace them
        "next_run_at": next_due(checked["cron"], checked["timezone"], now) if enabled else None,
    }
    try:
        async with manager.sessions.begin() as session:
            row = await stored.insert_schedule(session, row_values)
            await audit.record(
                session, actor, "plugin.schedule.create", plugin.slug, "ok", f"{row.key}: {row.cron}"
            )
    except stored.DuplicateScheduleError:
        raise ConflictError(
            f"plugin {plugin.slug} already has a schedule {checked['key']!r}; "
            "change it with PATCH or choose another id"
        ) from None
    return ScheduleView(plugin.slug, row)


async def update_schedule(
    manager: PluginManager, ref: str, sid: str, changes: Mapping[str, Any], actor: str
) -> ScheduleView:
    """Change a schedule; it keeps the operator's values from then on, also if declared. Audited."""
    plugin = await manager.get(ref)
    async with manager.sessions.begin() as session:
        row = await _schedule(session, plugin, sid)
        checked = _checked(changes, row)
        changed = {k: v for k, v in checked.items() if getattr(row, k) != v}
        for column, value in changed.items():
            setattr(row, column, value)
        if changed:
            row.customized = True  # the operator's values now, kept when the plugin declares it again
        if any(k in changed for k in _TIMING):
            row.next_run_at = next_due(row.cron, row.timezone, utcnow()) if row.enabled else None
        await audit.record(
            session,
            actor,
            "plugin.schedule.update",
            plugin.slug,
            "ok",
            f"{row.key}: {', '.join(sorted(changed)) or 'no change'}",
        )
        last = await stored.last_runs(session, [row.id])
    return ScheduleView(plugin.slug, row, last.get(row.id))


async def delete_schedule(manager: PluginManager, ref: str, sid: str, actor: str) -> None:
    """Remove a schedule and its runs; a declared one is refused (it would come back). Audited."""
    plugin = await manager.get(ref)
    async with manager.sessions.begin() as session:
        row = await _schedule(session, plugin, sid)
        if row.declared:
            raise ConflictError(
                f"schedule {row.key} is declared by plugin {plugin.slug} "
                "and would come back at its next start; "
                'disable it with PATCH {"enabled": false} instead'
            )
        await session.execute(delete(ScheduleRow).where(ScheduleRow.id == row.id))
        await audit.record(session, actor, "plugin.schedule.delete", plugin.slug, "ok", row.key)


async def runs(
    manager: PluginManager, ref: str, sid: str, limit: int, offset: int
) -> tuple[ScheduleView, list[ScheduleRunRow]]:
    """A schedule's runs, newest first."""
    plugin = await manager.get(ref)
    async with manager.sessions() as session:
        row = await _schedule(session, plugin, sid)
        return ScheduleView(plugin.slug, row), await stored.runs_of(session, row.id, limit, offset)
