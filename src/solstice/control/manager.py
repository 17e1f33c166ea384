"""The plugin manager: every plugin operation goes store first, then host, one plugin at a time."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from solstice.control.declared_schedules import read_declared, resume, sync_declared
from solstice.control.errors import ConflictError, InvalidError, NotFoundError, StartFailedError
from solstice.control.object_hooks import ChangedBy, ObjectHooks, read_registrations
from solstice.control.object_views import plugin_view
from solstice.control.specs import spec_for
from solstice.hooks import hook_name
from solstice.host import (
    PluginConfigError,
    PluginError,
    PluginHost,
    PluginNotLoadedError,
    PluginSpec,
    PluginState,
)
from solstice.settings import Settings
from solstice.store import audit
from solstice.store.apps import forget_agent
from solstice.store.llms import entries_for_plugin
from solstice.store.models import PluginRow
from solstice.store.plugins import DuplicateSlugError, all_plugins, get_plugin, insert_plugin

log = structlog.get_logger("solstice.control")

# Fields whose change needs the running plugin replaced.
RUNTIME_FIELDS = ("command", "config", "env", "timeout_ms", "checksum")
# States in which an instance is (or soon again is) answering calls.
_SERVING = (PluginState.HEALTHY, PluginState.UNHEALTHY)


class PluginManager:
    """Creates, changes, reloads and removes plugins, keeping store and host in step."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], host: PluginHost
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.host = host
        self.ready = False
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Revision of each plugin this server last applied to its host.
        self._applied: dict[str, int] = {}
        self._reconciler: asyncio.Task[None] | None = None
        # Called after every change, so readers of the store (the gateway) rebuild their view.
        self.listeners: list[Callable[[], Awaitable[None]]] = []
        # Queues the after_* object hook notifications of each change, in the change's transaction.
        self.object_hooks: ObjectHooks | None = None
        host.restart_listeners.append(self._restarted)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Load every active plugin (bounded concurrency), then follow changes by other servers."""
        await self.reconcile()
        self.ready = True
        self._reconciler = asyncio.create_task(self._reconcile_loop())

    async def aclose(self) -> None:
        """Stop following changes and stop every plugin."""
        self.ready = False
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
        await self.host.aclose()

    # -- operations ----------------------------------------------------------------------

    async def create(self, values: Mapping[str, Any], actor: str) -> PluginRow:
        """Store a new plugin and start it when active; a failed start is stored, not raised."""
        slug = values["slug"]
        async with self._locks[slug]:
            try:
                async with self.sessions.begin() as session:
                    row = await insert_plugin(session, values)
                    await audit.record(session, actor, "plugin.create", slug, "ok")
                    await self._notify_hooks(session, "after_create", row, actor)
            except DuplicateSlugError:
                await self._audit(actor, "plugin.create", slug, "refused", "duplicate slug")
                raise ConflictError(
                    f"a plugin with slug {slug!r} already exists; choose another slug or update that plugin"
                ) from None
            if row.is_active:
                await self._apply(row)
        await self.notify()
        return await self._fresh(row.id)

    async def update(self, ref: str, changes: Mapping[str, Any], actor: str) -> PluginRow:
        """Change a plugin; a serving plugin is only changed if the new settings start."""
        row = await self.get(ref)
        async with self._locks[row.slug]:
            row = await self.get(ref)
            if "slug" in changes and changes["slug"] != row.slug:
                raise InvalidError(
                    f"slug cannot be changed (from {row.slug!r} to {changes['slug']!r}); "
                    "create a new plugin and delete this one"
                )
            changed = {k: v for k, v in changes.items() if getattr(row, k) != v}
            if changed.get("is_active") is True:
                await resume(self.sessions, row.id)
            runtime = any(k in RUNTIME_FIELDS for k in changed)
            active = changed.get("is_active", row.is_active)
            replaced = active and runtime and self._serving(row.slug)
            if replaced:
                candidate = PluginRow(**{**_columns(row), **changed})
                await self._replace(candidate, actor, "plugin.update")
            async with self.sessions.begin() as session:
                # Locked: the notifications of changes that committed before this one come first.
                stored = await session.get(PluginRow, row.id, with_for_update=True)
                if stored is None:
                    raise NotFoundError(f"plugin {row.slug} was deleted meanwhile")
                previous = plugin_view(stored)
                for key, value in changed.items():
                    setattr(stored, key, value)
                if runtime or "is_active" in changed:
                    stored.revision += 1
                await audit.record(
                    session, actor, "plugin.update", row.slug, "ok", ", ".join(sorted(changed))
                )
                if changed:
                    await self._notify_hooks(session, "after_update", stored, actor, previous)
            row = await self._fresh(row.id)
            if replaced:
                self._applied[row.slug] = row.revision
                await self._record_learned(row)
            elif not row.is_active:
                await self._unload(row.slug)
                self._applied[row.slug] = row.revision
            elif self._applied.get(row.slug) != row.revision:
                await self._apply(row)
        await self.notify()
        return await self._fresh(row.id)

    async def delete(self, ref: str, actor: str) -> None:
        """Stop a plugin and remove it."""
        row = await self.get(ref)
        async with self._locks[row.slug]:
            await self._unload(row.slug)
            async with self.sessions.begin() as session:
                stored = await session.get(PluginRow, row.id, with_for_update=True)
                if stored is not None:
                    await self._notify_hooks(session, "after_delete", stored, actor)
                    await session.delete(stored)
                # An app keeps no right to a slug that a later plugin may take.
                await forget_agent(session, row.slug)
                await audit.record(session, actor, "plugin.delete", row.slug, "ok")
            self._applied.pop(row.slug, None)
        self._locks.pop(row.slug, None)
        await self.notify()

    async def reload(self, ref: str, actor: str) -> PluginRow:
        """Start a fresh instance and switch to it; on failure the old one keeps serving."""
        row = await self.get(ref)
        async with self._locks[row.slug]:
            row = await self.get(ref)
            if not row.is_active:
                raise ConflictError(
                    f"plugin {row.slug!r} is inactive; activate it with is_active: true instead of reloading"
                )
            async with self.sessions.begin() as session:
                await session.execute(
                    update(PluginRow)
                    .where(PluginRow.id == row.id)
                    .values(revision=PluginRow.revision + 1, updated_at=PluginRow.updated_at)
                )
            row = await self._fresh(row.id)
            if self._serving(row.slug):
                await self._replace(row, actor, "plugin.reload")
                self._applied[row.slug] = row.revision
                await self._record_learned(row)
            else:
                await self._apply(row)
                status, error = self._host_status(row.slug)
                if status == PluginState.FAILED.value:
                    await self._audit(actor, "plugin.reload", row.slug, "failed", error or "")
                    raise StartFailedError(f"plugin {row.slug!r} failed to start: {error}")
            await self._audit(actor, "plugin.reload", row.slug, "ok")
            return await self._fresh(row.id)

    async def get(self, ref: str) -> PluginRow:
        """A plugin by id or slug, or NotFoundError."""
        async with self.sessions() as session:
            row = await get_plugin(session, ref)
        if row is None:
            raise NotFoundError(f"no plugin with id or slug {ref!r}; list plugins with GET /api/v1/plugins")
        return row

    def lock_for(self, slug: str) -> asyncio.Lock:
        """The lock that serialises operations on one plugin."""
        return self._locks[slug]

    async def applied_externally(self, plugin_id: int, locked: bool = False) -> None:
        """Note that a plugin's new revision already runs here (its chain changed), or start it.

        `locked` says the caller already holds the plugin's lock.
        """
        row = await self._fresh_or_none(plugin_id)
        if row is None or not row.is_active:
            return
        async with contextlib.AsyncExitStack() as stack:
            if not locked:
                await stack.enter_async_context(self._locks[row.slug])
            if self._serving(row.slug):
                self._applied[row.slug] = row.revision
            else:
                await self._apply(row)

    def keeping_current_overrides(self, spec: PluginSpec) -> PluginSpec:
        """`spec` plus the configurations the running instance has: requests routed with the
        gateway's previous snapshot may still name them until it is rebuilt."""
        try:
            running = self.host.spec(spec.slug)
        except PluginNotLoadedError:
            return spec
        return dataclasses.replace(spec, overrides={**running.overrides, **spec.overrides})

    async def spec(self, row: PluginRow) -> PluginSpec:
        """The host spec of a plugin, with the per-LLM overrides stored for it."""
        async with self.sessions() as session:
            entries = await entries_for_plugin(session, row.id) if row.id is not None else []
        return spec_for(row, entries)

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Make the host match the store: load, reload and unload what changed elsewhere."""
        async with self.sessions() as session:
            rows = await all_plugins(session)
        wanted = {row.slug: row for row in rows if row.is_active}
        for status in self.host.statuses():
            if status.slug not in wanted and not self._locks[status.slug].locked():
                async with self._locks[status.slug]:
                    await self._unload(status.slug)
                    self._applied.pop(status.slug, None)
        stale = [row for row in wanted.values() if self._applied.get(row.slug) != row.revision]
        limit = asyncio.Semaphore(self.settings.plugin_load_concurrency)

        async def bring_up(row: PluginRow) -> None:
            async with limit, self._locks[row.slug]:
                try:
                    current = await self._fresh_or_none(row.id)
                    if current is None or not current.is_active:
                        return
                    if self._applied.get(current.slug) != current.revision:
                        await self._apply(current)
                except Exception:
                    # One plugin must not stop start-up or reconciliation of the others;
                    # it is tried again at the next reconcile.
                    log.exception("plugin could not be applied", plugin=row.slug)

        await asyncio.gather(*(bring_up(row) for row in stale))
        await self.notify()

    async def notify(self) -> None:
        """Tell listeners that plugins changed."""
        for listener in self.listeners:
            await listener()

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_interval)
            try:
                await self.reconcile()
            except Exception:  # a database hiccup must not end reconciliation for good
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # A library turned our cancellation into another error: still stop, or
                    # shutdown waits on this loop for ever.
                    raise asyncio.CancelledError from None
                log.exception("reconcile failed; retrying at the next interval")

    # -- internals -----------------------------------------------------------------------

    def _serving(self, slug: str) -> bool:
        try:
            return self.host.status(slug).state in _SERVING
        except PluginNotLoadedError:
            return False

    def _host_status(self, slug: str) -> tuple[str, str | None]:
        try:
            status = self.host.status(slug)
        except PluginNotLoadedError:
            return "stopped", None
        return status.state.value, status.last_error

    async def _apply(self, row: PluginRow) -> None:
        """Load or reload the plugin as stored and record the outcome; start errors are kept."""
        spec = await self.spec(row)
        try:
            await self.host.load(spec)
        except PluginError as exc:
            log.warning("plugin did not start", plugin=row.slug, error=str(exc))
        except Exception as exc:
            # The host turns start failures into PluginError; anything else still fails only this
            # plugin, and is tried again at the next reconcile (its revision stays unapplied).
            log.exception("plugin start failed unexpectedly", plugin=row.slug)
            failure = f"plugin {row.slug} could not be started: {exc}"
            await self._record_status(row, PluginState.FAILED.value, failure)
            return
        self._applied[row.slug] = row.revision
        await self._record_learned(row)

    def _learned(self, row: PluginRow) -> dict[str, Any]:
        """Fields learned from the running plugin: back-filled hooks, the oci:// digest, warnings."""
        try:
            status = self.host.status(row.slug)
        except PluginNotLoadedError:
            return {}
        learned: dict[str, Any] = {}
        if status.digest:
            learned["digest"] = status.digest
        warnings = list(status.warnings)
        info = status.info
        if info is not None and info.hooks:
            reported = [hook_name(h) for h in info.hooks]
            if not row.hook_types:
                learned.update(hook_type=reported[0], hook_types=reported)
            warnings += [
                f"plugin {row.slug} is registered for {hook} but reports only {', '.join(reported)}; "
                f"{hook} calls will fail"
                for hook in row.hook_types or []
                if hook not in reported
            ]
        if info is not None:
            learned["requested_scopes"] = sorted(set(info.scopes))
            warnings += read_declared(row.slug, info.schedules)[1]
            learned["object_hooks"], unusable = read_registrations(row.slug, info.object_hooks)
            warnings += unusable
        if info is not None or status.digest or warnings:
            learned["warnings"] = warnings
        return learned

    async def _replace(self, row: PluginRow, actor: str, action: str) -> None:
        """Reload a serving plugin with `row`'s settings, or raise and keep the old instance."""
        try:
            await self.host.reload(row.slug, self.keeping_current_overrides(await self.spec(row)))
        except PluginConfigError as exc:
            await self._audit(actor, action, row.slug, "failed", str(exc))
            raise InvalidError(f"{exc}; the running plugin is unchanged") from None
        except PluginError as exc:
            await self._audit(actor, action, row.slug, "failed", str(exc))
            raise StartFailedError(f"{exc}; the previous instance keeps serving") from None

    async def _unload(self, slug: str) -> None:
        with contextlib.suppress(PluginNotLoadedError):
            await self.host.unload(slug)

    async def _restarted(self, slug: str) -> None:
        """A crash restart may bring new warnings (the policy ran again): store what is known now."""
        async with self._locks[slug]:
            try:
                row = await self.get(slug)
            except NotFoundError:
                return
            await self._record_learned(row)

    async def _notify_hooks(
        self,
        session: AsyncSession,
        event: str,
        row: PluginRow,
        actor: str,
        previous: Mapping[str, Any] | None = None,
    ) -> None:
        if self.object_hooks is not None:
            await self.object_hooks.queue_after(
                session,
                "plugin",
                event,
                plugin_view(row),
                by=ChangedBy(actor),
                previous=previous,
                subject=row.slug,
            )

    async def _record_learned(self, row: PluginRow) -> None:
        """Store the plugin's status, what it reported about itself, and the schedules it declares."""
        await self._record_status(row, *self._host_status(row.slug), self._learned(row))
        try:
            info = self.host.status(row.slug).info
        except PluginNotLoadedError:
            return
        if info is not None:
            await sync_declared(self.sessions, row, read_declared(row.slug, info.schedules)[0])

    async def _record_status(
        self, row: PluginRow, status: str, error: str | None, extra: Mapping[str, Any] | None = None
    ) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(PluginRow)
                .where(PluginRow.id == row.id)
                .values(status=status, last_error=error, updated_at=PluginRow.updated_at, **(extra or {}))
            )

    async def _audit(self, actor: str, action: str, target: str, result: str, detail: str = "") -> None:
        async with self.sessions.begin() as session:
            await audit.record(session, actor, action, target, result, detail)

    async def _fresh(self, plugin_id: int) -> PluginRow:
        row = await self._fresh_or_none(plugin_id)
        if row is None:
            raise NotFoundError(f"plugin {plugin_id} was deleted meanwhile")
        return row

    async def _fresh_or_none(self, plugin_id: int) -> PluginRow | None:
        async with self.sessions() as session:
            return await session.get(PluginRow, plugin_id)


def _columns(row: PluginRow) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in PluginRow.__table__.columns}
