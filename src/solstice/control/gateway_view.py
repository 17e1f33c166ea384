"""The control plane's gateway configuration: rebuilt from the store after each change."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from solstice.control.snapshot import build_snapshot
from solstice.gateway.routes import ConfigHolder, config_from_snapshot

log = structlog.get_logger("solstice.control")


class StoredGatewayConfig(ConfigHolder):
    """The gateway configuration requests read; refresh() replaces it atomically."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__()
        self._sessions = sessions
        self._lock = asyncio.Lock()
        self._generation = 0
        # Told after each rebuild: every configuration change passes through here.
        self.listeners: list[Callable[[], Awaitable[None]]] = []

    async def refresh(self) -> None:
        """Rebuild the configuration from the store; concurrent callers share one rebuild.

        A failed rebuild keeps the previous configuration (and is logged): the change that
        triggered it is already stored, and the reconcile loop rebuilds again.
        """
        wanted = self._generation + 1
        async with self._lock:
            if self._generation >= wanted:
                return  # someone rebuilt after our change was written
            self._generation += 1
            try:
                async with self._sessions() as session:
                    self.config = config_from_snapshot(await build_snapshot(session, None))
            except Exception:  # the change is stored: keep serving, the next reconcile pass retries
                log.exception("gateway configuration could not be rebuilt; keeping the previous one")
        for listener in self.listeners:
            await listener()
