"""What a plugin declares at each start, stored: added, updated, kept when an operator owns it, and
disabled with its history when no longer declared."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select

from solstice.control.declared_schedules import resume, sync_declared
from solstice.control.schedule_fields import ScheduleFields
from solstice.sealing import load_keyring
from solstice.settings import Settings
from solstice.store.audit import recent
from solstice.store.database import create_engine, migrate, session_factory
from solstice.store.models import PluginRow, ScheduleRow, ScheduleRunRow, utcnow


def _fields(key: str, cron: str = "@hourly") -> ScheduleFields:
    return ScheduleFields(key=key, cron=cron, timezone="UTC")


def test_declarations_are_stored_without_losing_operators_changes_or_history(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=Fernet.generate_key().decode())

    async def scenario() -> None:
        engine = create_engine(settings)
        await migrate(engine, load_keyring(settings))
        sessions = session_factory(engine, load_keyring(settings))
        try:
            async with sessions.begin() as session:
                plugin = PluginRow(
                    name="p", slug="p", command="grpc://127.0.0.1:1", hook_type="scheduled_task"
                )
                session.add(plugin)
            await sync_declared(sessions, plugin, [_fields("a"), _fields("b"), _fields("c")])
            async with sessions.begin() as session:
                rows = {r.key: r for r in (await session.execute(select(ScheduleRow))).scalars()}
                rows["b"].cron, rows["b"].customized = "@daily", True  # an operator changed b
                session.add(
                    ScheduleRunRow(schedule_id=rows["a"].id, run_id="r1", due_at=utcnow(), status="succeeded")
                )

            # The next version changes a's cron, still declares b, and drops c.
            await sync_declared(sessions, plugin, [_fields("a", "@daily"), _fields("b", "@weekly")])
            async with sessions() as session:
                rows = {r.key: r for r in (await session.execute(select(ScheduleRow))).scalars()}
            assert (rows["a"].cron, rows["a"].declared, rows["a"].enabled) == ("@daily", True, True)
            assert (rows["b"].cron, rows["b"].declared) == ("@daily", True)  # the operator's value stays
            assert (rows["c"].declared, rows["c"].enabled, rows["c"].next_run_at) == (False, False, None)

            # A version that declares none keeps every row and its runs; one that declares c again
            # brings it back.
            await sync_declared(sessions, plugin, [])
            await sync_declared(sessions, plugin, [_fields("c")])
            async with sessions() as session:
                rows = {r.key: r for r in (await session.execute(select(ScheduleRow))).scalars()}
                runs = list((await session.execute(select(ScheduleRunRow))).scalars())
                undeclared = [
                    e.detail for e in await recent(session, 50, 0) if e.action == "plugin.schedule.undeclared"
                ]
            assert (rows["c"].declared, rows["c"].enabled) == (True, True) and rows[
                "c"
            ].next_run_at is not None
            assert (rows["a"].declared, rows["a"].enabled) == (False, False)
            assert [r.run_id for r in runs] == ["r1"]
            assert sorted(undeclared) == ["a", "b", "c"]

            # Reactivating a plugin starts its enabled schedules from now.
            async with sessions.begin() as session:
                row = await session.get(ScheduleRow, rows["c"].id)
                assert row is not None
                row.next_run_at = utcnow().replace(year=2001)
            await resume(sessions, plugin.id)
            async with sessions() as session:
                row = await session.get(ScheduleRow, rows["c"].id)
                assert row is not None and row.next_run_at is not None and row.next_run_at > utcnow()
        finally:
            await engine.dispose()

    asyncio.run(scenario())
