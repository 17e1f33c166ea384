"""Make an edge's plugin host and gateway match a snapshot, without failing requests in flight.

Order: start new plugins and reload changed ones, then switch the gateway to the new routes,
then stop plugins no route uses any more. A plugin that leaves the configuration (deleted on the
control plane, or removed from plugins.yaml) while the edge runs, and still absent from the next
configuration applied, is then forgotten (its data).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from solstice.gateway.routes import ConfigHolder, config_from_snapshot
from solstice.host import PluginError, PluginHost, PluginNotLoadedError, PluginSpec
from solstice.host.spec import spec_of
from solstice.snapshot import Snapshot, as_snapshot, overrides_of

log = structlog.get_logger("solstice.edge")


def specs_from_snapshot(snapshot: Snapshot) -> dict[str, PluginSpec]:
    """The host spec of every active plugin, with one configuration per per-LLM override."""
    plugins = {p["slug"]: p for p in snapshot.get("plugins", []) if p.get("is_active")}
    chain_overrides: dict[str, list[dict[str, Any]]] = {slug: [] for slug in plugins}
    for llm in snapshot.get("llms", []):
        for entry in llm.get("chain", []):
            if entry["plugin"] in plugins:
                chain_overrides[entry["plugin"]].append(entry.get("config_override") or {})
    return {
        slug: spec_of(plugin, overrides_of(plugin.get("config") or {}, chain_overrides[slug]))
        for slug, plugin in plugins.items()
    }


class Reconciler:
    """Applies snapshots to a host and a gateway, remembering what it applied."""

    def __init__(
        self,
        host: PluginHost,
        state: ConfigHolder,
        on_removed: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self.host = host
        self.state = state
        self.on_removed = on_removed
        # Every slug of the last snapshot applied, inactive ones too; None before the first.
        self._present: set[str] | None = None
        # Slugs missing from the last snapshot only: forgotten if the next one lacks them too.
        self._missing: set[str] = set()
        self.version: str | None = None
        self._specs: dict[str, PluginSpec] = {}
        self._marks: dict[str, tuple[str | None, int | None] | None] = {}
        self._generation: int | None = None

    async def apply(self, received: Mapping[str, Any]) -> None:
        """Load, reload and unload plugins as the snapshot says, and switch the routes."""
        snapshot = as_snapshot(received)
        wanted = specs_from_snapshot(snapshot)
        # What besides the spec asks for a fresh instance: a new digest, or a reload on the control plane.
        marks = {p["slug"]: (p.get("digest"), p.get("revision")) for p in snapshot.get("plugins", [])}
        generation = int(snapshot.get("reload_generation") or 0)
        reload_all = self._generation is not None and generation != self._generation
        for slug, spec in wanted.items():
            changed = spec != self._specs.get(slug) or marks.get(slug) != self._marks.get(slug)
            if slug in self._specs and not (changed or reload_all):
                continue
            try:
                if slug in self._specs:
                    await self.host.reload(slug, spec)
                else:
                    await self.host.load(spec)
            except PluginError as exc:
                # A failed start stays loaded (and retried); a failed reload keeps the old instance.
                log.warning("plugin did not start", plugin=slug, error=str(exc))
            except Exception:
                # One plugin must not stop the others from being applied.
                log.exception("plugin could not be applied", plugin=slug)
            self._specs[slug] = spec
            self._marks[slug] = marks.get(slug)
        self.state.config = config_from_snapshot(snapshot)
        for slug in [s for s in self._specs if s not in wanted]:
            with contextlib.suppress(PluginNotLoadedError):
                await self.host.unload(slug)
            del self._specs[slug]
            self._marks.pop(slug, None)
        await self._forget_removed({p["slug"] for p in snapshot.get("plugins", [])})
        self._generation = generation
        self.version = str(snapshot.get("version") or "")
        log.info("configuration applied", version=self.version, plugins=len(wanted))

    async def _forget_removed(self, present: set[str]) -> None:
        # Only a removal seen happening (the first snapshot after a start says nothing of the past),
        # and confirmed by the next configuration: a plugins.yaml caught half-saved loses nothing.
        if self._present is None:
            self._present = present
            return
        missing = (self._present | self._missing) - present
        gone = sorted(missing & self._missing)
        self._missing = missing - set(gone)
        self._present = present
        if self.on_removed is None:
            return
        for slug in gone:
            try:
                await self.on_removed(slug)
            except Exception:  # the configuration is applied; a failed cleanup must not undo that
                log.exception("could not forget a removed plugin", plugin=slug)
