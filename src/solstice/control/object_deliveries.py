"""Delivers queued after_* object hook notifications: at least once, in order per plugin and object.

Each server takes the oldest waiting notification of each plugin and object whose plugin runs
there, with a lease of that plugin's deadline, and calls the plugins in parallel. A delivered
notification is deleted; a failed one waits (1 s, doubled per attempt, up to
`SOLSTICE_OBJECT_HOOK_RETRY_MAX`) and the later ones of the same object wait behind it. One that
waited longer than `SOLSTICE_OBJECT_HOOK_MAX_AGE`, or whose plugin lost the scope objects.hook or
the registration, is dropped with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from solstice.control.object_hooks import ObjectHooks
from solstice.host import PluginCallError, PluginHost, PluginNotLoadedError, PluginState
from solstice.metrics import OBJECT_HOOK_BACKLOG, OBJECT_HOOK_CALLS, OBJECT_HOOK_DROPPED
from solstice.protocol import pb
from solstice.settings import Settings
from solstice.store import object_deliveries as queued
from solstice.store.models import ObjectDeliveryRow, utcnow

log = structlog.get_logger("solstice.object_hooks")

_BATCH = 200
# Calls in flight at once, across plugins and objects.
_PARALLEL = 16
# Past this many attempts the wait stays at its longest (and 2**n stays a float).
_MAX_DOUBLINGS = 30
_SERVING = (PluginState.HEALTHY, PluginState.UNHEALTHY)


class ObjectDeliveries:
    """The delivery loop of one server."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        host: PluginHost,
        hooks: ObjectHooks,
        server: str,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.host = host
        self.hooks = hooks
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
            sent = 0
            try:
                sent = await self.deliver()
            except Exception:  # a database hiccup must not end delivery for good
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from None
                log.exception("delivering object hook notifications failed; retrying")
            if not sent:  # with work done, look again at once: the next of each object may be due
                await asyncio.sleep(self.settings.object_hook_interval)

    def _serving(self) -> list[str]:
        return [status.slug for status in self.host.statuses() if status.state in _SERVING]

    async def deliver(self) -> int:
        """Deliver what is due now, one notification per plugin and object at a time; how many went."""
        now = utcnow()
        async with self.sessions.begin() as session:
            expired = await queued.drop_older_than(
                session, now - timedelta(seconds=self.settings.object_hook_max_age)
            )
        if expired:
            OBJECT_HOOK_DROPPED.inc(expired)
            log.warning(
                "object hook notifications dropped after waiting too long; "
                "raise SOLSTICE_OBJECT_HOOK_MAX_AGE or fix the plugins that do not take them",
                dropped=expired,
            )
        serving = self._serving()
        async with self.sessions() as session:
            ready = await queued.ready(session, now, serving, _BATCH) if serving else []
            OBJECT_HOOK_BACKLOG.set(await queued.backlog(session))
        if not ready:
            return 0
        limit = asyncio.Semaphore(_PARALLEL)
        hooking = await self.hooks.hooking({(row.object_type, row.event) for row, _ in ready})

        async def one(row: ObjectDeliveryRow, slug: str) -> bool:
            async with limit:
                return await self._claim_and_send(row, slug, hooking[row.object_type, row.event])

        sent = await asyncio.gather(*(one(row, slug) for row, slug in ready))
        return sum(sent)

    async def _claim_and_send(self, row: ObjectDeliveryRow, slug: str, watchers: set[str]) -> bool:
        if slug not in watchers:
            # Revoked, unregistered or switched to another hook type since it was queued.
            async with self.sessions.begin() as session:
                await queued.forget(session, row.id)
            OBJECT_HOOK_DROPPED.inc()
            log.warning(
                "object hook notification dropped: the plugin no longer hooks it",
                plugin=slug,
                object_event=row.event,
            )
            return False
        try:
            spec = self.host.spec(slug)
        except PluginNotLoadedError:
            return False
        timeout = (spec.timeout_ms or self.settings.plugin_timeout_ms) / 1000
        now = utcnow()
        async with self.sessions.begin() as session:
            # The lease outlasts the call: no other server sends it meanwhile.
            if not await queued.claim(
                session, row.id, self.server, now, now + timedelta(seconds=timeout + 30)
            ):
                return False
        return await self._send(row, slug, timeout)

    async def _send(self, row: ObjectDeliveryRow, slug: str, timeout: float) -> bool:
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
            await self.host.client(slug).handle_object_hook(request, timeout)
        except (PluginCallError, PluginNotLoadedError) as exc:
            delay = min(2.0 ** min(row.attempts, _MAX_DOUBLINGS), self.settings.object_hook_retry_max)
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
                await queued.failed(session, row.id, error[:2000], utcnow() + timedelta(seconds=delay))
            return False
        OBJECT_HOOK_CALLS.labels(slug, row.event, "delivered").inc()
        async with self.sessions.begin() as session:
            await queued.forget(session, row.id)
        return True
