"""Delivers queued after_* object hook notifications: at least once, in order per plugin and object.

Every `SOLSTICE_OBJECT_HOOK_INTERVAL` seconds each server takes the oldest waiting notification
of each plugin and object whose plugin runs there, with a lease, and calls the plugin. A delivered
notification is deleted; a failed one waits (1 s, doubled per attempt, up to
`SOLSTICE_OBJECT_HOOK_RETRY_MAX`) and the notifications after it for the same object wait with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from solstice.host import PluginCallError, PluginHost, PluginNotLoadedError, PluginState
from solstice.metrics import OBJECT_HOOK_BACKLOG, OBJECT_HOOK_CALLS
from solstice.protocol import pb
from solstice.settings import Settings
from solstice.store import object_deliveries as queued
from solstice.store.models import ObjectDeliveryRow, utcnow

log = structlog.get_logger("solstice.object_hooks")

_BATCH = 100
_SERVING = (PluginState.HEALTHY, PluginState.UNHEALTHY)


class ObjectDeliveries:
    """The delivery loop of one server."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], host: PluginHost, server: str
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.host = host
        self.server = server
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin delivering."""
        self._loop = asyncio.create_task(self._deliver_loop())

    async def aclose(self) -> None:
        """Stop delivering; what is not delivered stays queued."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    async def _deliver_loop(self) -> None:
        while True:
            try:
                await self.deliver()
            except Exception:  # a database hiccup must not end delivery for good
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from None
                log.exception("delivering object hook notifications failed; retrying")
            await asyncio.sleep(self.settings.object_hook_interval)

    def _serving(self, slug: str) -> bool:
        try:
            return self.host.status(slug).state in _SERVING
        except PluginNotLoadedError:
            return False

    async def deliver(self) -> None:
        """Deliver what is due now, one notification per plugin and object at a time."""
        now = utcnow()
        async with self.sessions() as session:
            ready = await queued.ready(session, now, _BATCH)
            backlog = (await session.execute(select(func.count(ObjectDeliveryRow.id)))).scalar_one()
        OBJECT_HOOK_BACKLOG.set(backlog)
        lease = timedelta(seconds=self.settings.plugin_timeout_ms / 1000 + 30)
        for row, slug in ready:
            if not self._serving(slug):
                continue  # another server may have it running; it waits otherwise
            async with self.sessions.begin() as session:
                if not await queued.claim(session, row.id, self.server, now, now + lease):
                    continue
            await self._send(row, slug)

    async def _send(self, row: ObjectDeliveryRow, slug: str) -> None:
        request = pb.ObjectHookRequest(
            context=pb.RequestContext(request_id=row.request_id),
            event=row.event,
            object_type=row.object_type,
            object_json=row.object_json,
            previous_json=row.previous_json,
            actor=row.actor,
            delivery_id=row.delivery_id,
        )
        try:
            client = self.host.client(slug)
            timeout_ms = self.host.spec(slug).timeout_ms or self.settings.plugin_timeout_ms
            await client.handle_object_hook(request, timeout_ms / 1000)
        except (PluginCallError, PluginNotLoadedError) as exc:
            delay = min(2.0**row.attempts, self.settings.object_hook_retry_max)
            error = str(exc) if isinstance(exc, PluginCallError) else f"plugin {slug} is not running here"
            OBJECT_HOOK_CALLS.labels(slug, row.event, "error").inc()
            log.info(
                "object hook notification not delivered; retrying",
                plugin=slug,
                object_event=row.event,
                retry_in_s=delay,
                error=error,
            )
            async with self.sessions.begin() as session:
                await queued.failed(session, row.id, error, utcnow() + timedelta(seconds=delay))
            return
        OBJECT_HOOK_CALLS.labels(slug, row.event, "delivered").inc()
        async with self.sessions.begin() as session:
            await queued.delivered(session, row.id)
