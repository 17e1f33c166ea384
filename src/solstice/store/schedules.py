"""Reading and writing plugins' schedules and their runs.

A server claims a due run by moving the schedule's `next_run_at` on from the value it read, in
one UPDATE: of several servers on one database only one sees its UPDATE change the row, and only
that one records and runs it. The run's row (unique per schedule and due time) says so again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from solstice.store.models import PluginRow, ScheduleRow, ScheduleRunRow

RUNNING = "running"


class DuplicateScheduleError(ValueError):
    """The plugin already has a schedule with this id."""


@dataclass(frozen=True)
class Due:
    """A schedule whose next run is due, with the plugin it belongs to."""

    schedule: ScheduleRow
    slug: str


async def schedules_of(session: AsyncSession, plugin_id: int) -> list[ScheduleRow]:
    """A plugin's schedules, by id."""
    query = select(ScheduleRow).where(ScheduleRow.plugin_id == plugin_id).order_by(ScheduleRow.id)
    return list((await session.execute(query)).scalars())


async def schedule_of(session: AsyncSession, plugin_id: int, key: str) -> ScheduleRow | None:
    """One of a plugin's schedules, by its id within the plugin."""
    query = select(ScheduleRow).where(ScheduleRow.plugin_id == plugin_id, ScheduleRow.key == key)
    return (await session.execute(query)).scalar_one_or_none()


async def insert_schedule(session: AsyncSession, values: Mapping[str, Any]) -> ScheduleRow:
    """Add a schedule, or DuplicateScheduleError (the session's transaction is then unusable)."""
    row = ScheduleRow(**values)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        raise DuplicateScheduleError(values["key"]) from None
    return row


async def due_schedules(session: AsyncSession, now: datetime, limit: int) -> list[Due]:
    """Enabled schedules of active plugins whose next run is due, oldest first."""
    query = (
        select(ScheduleRow, PluginRow.slug)
        .join(PluginRow, PluginRow.id == ScheduleRow.plugin_id)
        .where(ScheduleRow.enabled.is_(True), PluginRow.is_active.is_(True), ScheduleRow.next_run_at <= now)
        .order_by(ScheduleRow.next_run_at)
        .limit(limit)
    )
    return [Due(schedule, slug) for schedule, slug in await session.execute(query)]


async def claim(session: AsyncSession, schedule_id: int, due_at: datetime, next_at: datetime) -> bool:
    """Move a schedule from `due_at` to `next_at`; False when another server did first."""
    result = await session.execute(
        update(ScheduleRow)
        .where(
            ScheduleRow.id == schedule_id, ScheduleRow.next_run_at == due_at, ScheduleRow.enabled.is_(True)
        )
        .values(next_run_at=next_at, updated_at=ScheduleRow.updated_at)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def disable(session: AsyncSession, schedule_id: int, due_at: datetime) -> bool:
    """Stop a schedule that was due at `due_at`; False when another server moved it first."""
    result = await session.execute(
        update(ScheduleRow)
        .where(ScheduleRow.id == schedule_id, ScheduleRow.next_run_at == due_at)
        .values(enabled=False, next_run_at=None, updated_at=ScheduleRow.updated_at)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def add_run(session: AsyncSession, values: Mapping[str, Any]) -> ScheduleRunRow:
    """Record a run (started, or skipped)."""
    row = ScheduleRunRow(**values)
    session.add(row)
    await session.flush()
    return row


async def finish_run(session: AsyncSession, run_id: str, values: Mapping[str, Any]) -> bool:
    """Record how a running run ended; False when it no longer runs (marked abandoned meanwhile)."""
    result = await session.execute(
        update(ScheduleRunRow)
        .where(ScheduleRunRow.run_id == run_id, ScheduleRunRow.status == RUNNING)
        .values(**values)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def beat(session: AsyncSession, run_ids: Sequence[str], now: datetime, until: datetime) -> None:
    """Say that these runs still run, and will be said to again before `until`."""
    if run_ids:
        await session.execute(
            update(ScheduleRunRow)
            .where(ScheduleRunRow.run_id.in_(list(run_ids)), ScheduleRunRow.status == RUNNING)
            .values(heartbeat_at=now, lease_until=until)
        )


async def abandon_stale(session: AsyncSession, now: datetime, error: str) -> list[str]:
    """Mark failed the runs whose server let their lease pass; the plugins they belonged to."""
    stale = select(ScheduleRunRow.id).where(
        ScheduleRunRow.status == RUNNING, ScheduleRunRow.lease_until < now
    )
    ids = list((await session.execute(stale)).scalars())
    if not ids:
        return []
    await session.execute(
        update(ScheduleRunRow)
        .where(ScheduleRunRow.id.in_(ids), ScheduleRunRow.status == RUNNING)
        .values(status="failed", finished_at=now, error=error)
    )
    slugs = (
        select(PluginRow.slug)
        .join(ScheduleRow, ScheduleRow.plugin_id == PluginRow.id)
        .join(ScheduleRunRow, ScheduleRunRow.schedule_id == ScheduleRow.id)
        .where(ScheduleRunRow.id.in_(ids))
    )
    return list((await session.execute(slugs)).scalars())


async def is_recorded(session: AsyncSession, schedule_id: int, due_at: datetime) -> bool:
    """Whether a run of this schedule and due time exists (a server's clock went back)."""
    query = select(ScheduleRunRow.id).where(
        ScheduleRunRow.schedule_id == schedule_id, ScheduleRunRow.due_at == due_at
    )
    return (await session.execute(query.limit(1))).first() is not None


async def is_running(session: AsyncSession, schedule_id: int) -> bool:
    """Whether a run of this schedule runs now, on any server."""
    query = select(ScheduleRunRow.id).where(
        ScheduleRunRow.schedule_id == schedule_id, ScheduleRunRow.status == RUNNING
    )
    return (await session.execute(query.limit(1))).first() is not None


async def reread(session: AsyncSession, schedule_id: int) -> ScheduleRow | None:
    """A schedule as stored now (after a claim: the values to run with)."""
    query = select(ScheduleRow).where(ScheduleRow.id == schedule_id).execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def trim_runs(session: AsyncSession, schedule_id: int, keep: int) -> None:
    """Delete all but the newest `keep` finished runs of a schedule."""
    newest = (
        select(ScheduleRunRow.id)
        .where(ScheduleRunRow.schedule_id == schedule_id)
        .order_by(ScheduleRunRow.id.desc())
        .limit(keep)
    )
    await session.execute(
        delete(ScheduleRunRow).where(
            ScheduleRunRow.schedule_id == schedule_id,
            ScheduleRunRow.status != RUNNING,
            ScheduleRunRow.id.not_in(newest.scalar_subquery()),
        )
    )


async def runs_of(
    session: AsyncSession, schedule_id: int, limit: int, offset: int = 0
) -> list[ScheduleRunRow]:
    """A schedule's runs, newest first."""
    query = (
        select(ScheduleRunRow)
        .where(ScheduleRunRow.schedule_id == schedule_id)
        .order_by(ScheduleRunRow.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def last_runs(session: AsyncSession, schedule_ids: Sequence[int]) -> dict[int, ScheduleRunRow]:
    """The newest run of each schedule that has one."""
    if not schedule_ids:
        return {}
    newest = (
        select(ScheduleRunRow.schedule_id, ScheduleRunRow.id)
        .where(ScheduleRunRow.schedule_id.in_(list(schedule_ids)))
        .order_by(ScheduleRunRow.schedule_id, ScheduleRunRow.id.desc())
    )
    wanted: dict[int, int] = {}
    for schedule_id, run in await session.execute(newest):
        wanted.setdefault(schedule_id, run)
    if not wanted:
        return {}
    rows = await session.execute(select(ScheduleRunRow).where(ScheduleRunRow.id.in_(list(wanted.values()))))
    return {row.schedule_id: row for row in rows.scalars()}
