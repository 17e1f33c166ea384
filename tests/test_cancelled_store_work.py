"""Cancelling a task in the middle of store work cancels it: shutdown never waits on a swallowed cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from solstice.control.manager import PluginManager
from solstice.host import PluginHost
from solstice.sealing import load_keyring
from solstice.settings import Settings
from solstice.store.database import create_engine, migrate, session_factory
from solstice.store.plugins import all_plugins
from tests.conftest import fast_settings


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    settings = Settings(data_dir=tmp_path, secret_key="")
    engine = create_engine(settings)
    keyring = load_keyring(settings)
    await migrate(engine, keyring)
    yield session_factory(engine, keyring)
    await engine.dispose()


async def test_a_read_cancelled_at_any_point_raises_cancelled(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The store's write watcher once read conn.info on the connection a cancel left invalid, and
    # the PendingRollbackError it raised replaced the CancelledError.
    async def read_forever() -> None:
        while True:
            async with sessions() as session:
                await all_plugins(session)

    outcomes: list[str] = []
    for step in range(120):
        task = asyncio.create_task(read_forever())
        await asyncio.sleep((step % 12) * 0.0005)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=10)
        assert done, f"cancel {step} did not end the task"
        outcomes.append("cancelled" if task.cancelled() else repr(task.exception()))
    assert set(outcomes) == {"cancelled"}


async def test_the_reconcile_loop_stops_when_its_cancel_comes_back_as_another_error(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fast_settings(reconcile_interval=0.01)
    async with PluginHost(settings) as host:
        manager = PluginManager(settings, sessions, host)
        passes: list[int] = []
        entered = asyncio.Event()

        async def reconcile() -> None:
            passes.append(1)
            if len(passes) == 1:
                return  # start-up's pass
            entered.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                raise RuntimeError("a driver's error in place of the cancel") from None

        monkeypatch.setattr(manager, "reconcile", reconcile)
        await manager.start()
        await asyncio.wait_for(entered.wait(), 10)
        await asyncio.wait_for(manager.aclose(), 10)
        assert manager._reconciler is not None and manager._reconciler.cancelled()
