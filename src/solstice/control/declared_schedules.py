"""The schedules a plugin declares (PluginInfo.schedules): read at each start, stored for the scheduler."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from solstice.control.schedule_fields import ScheduleFields, declared, next_due
from solstice.cron import CronError
from solstice.protocol import pb
from solstice.store import audit
from solstice.store import schedules as stored
from solstice.store.models import PluginRow, ScheduleRow, utcnow


def read_declared(slug: str, schedules: Sequence[pb.Schedule]) -> tuple[list[ScheduleFields], list[str]]:
    """The usable schedules a plugin declared, and a warning for each it declared that is not."""
    usable: dict[str, ScheduleFields] = {}
    warnings: list[str] = []
    for schedule in schedules:
        try:
            fields = declared(schedule)
        except CronError as exc:
            warnings.append(f"plugin {slug} declares a schedule that is not used: {exc}")
            continue
        if fields.key in usable:
            warnings.append(f"plugin {slug} declares schedule {fields.key} twice; the first is used")
            continue
        usable[fields.key] = fields
    return list(usable.values()), warnings


async def sync_declared(
    sessions: async_sessionmaker[AsyncSession], plugin: PluginRow, schedules: Sequence[ScheduleFields]
) -> None:
    """Store what a plugin declares at a start: new schedules added, its own ones updated, and ones
    it no longer declares disabled with their history kept (an operator's stay as they are). Audited."""
    now = utcnow()
    wanted = {fields.key: fields for fields in schedules}
    actor = f"plugin:{plugin.slug}"
    async with sessions.begin() as session:
        existing = {row.key: row for row in await stored.schedules_of(session, plugin.id)}
        for key, row in existing.items():
            fields = wanted.get(key)
            if fields is None:
                if row.declared:
                    row.declared = False
                    if not row.customized:
                        row.enabled, row.next_run_at = False, None
                    await audit.record(session, actor, "plugin.schedule.undeclared", plugin.slug, "ok", key)
                continue
            if row.customized:
                row.declared = True  # an operator's values win over the declaration
                continue
            values = fields.values()
            moved = (values["cron"], values["timezone"]) != (row.cron, row.timezone) or not row.declared
            for column, value in values.items():
                if getattr(row, column) != value:
                    setattr(row, column, value)
            if not row.declared:  # declared again after a version that did not
                row.declared = row.enabled = True
            if moved and row.enabled:
                row.next_run_at = next_due(row.cron, row.timezone, now)
        fresh = [
            {
                **fields.values(),
                "plugin_id": plugin.id,
                "enabled": True,
                "declared": True,
                "customized": False,
                "next_run_at": next_due(fields.cron, fields.timezone, now),
                "created_at": now,
                "updated_at": now,
            }
            for key, fields in wanted.items()
            if key not in existing
        ]
        if fresh:
            # Servers sharing a database all store a plugin's declaration at its start.
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            await session.execute(dialect.insert(ScheduleRow).values(fresh).on_conflict_do_nothing())


async def resume(sessions: async_sessionmaker[AsyncSession], plugin_id: int) -> None:
    """Start a reactivated plugin's enabled schedules from now: its inactive time was a pause, not misses."""
    now = utcnow()
    async with sessions.begin() as session:
        for row in await stored.schedules_of(session, plugin_id):
            if row.enabled:
                try:
                    row.next_run_at = next_due(row.cron, row.timezone, now)
                except CronError:
                    continue  # a hand-edited row: the scheduler stops it and says why
