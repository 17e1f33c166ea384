"""What the host needs to know to run one plugin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from solstice.snapshot import PluginEntry


@dataclass(frozen=True)
class PluginSpec:
    """A plugin as the host runs it: where it comes from and how it is called."""

    slug: str
    command: str
    config: Mapping[str, Any] = field(default_factory=dict)
    # Names of host environment variables passed through to a local plugin process.
    env: tuple[str, ...] = ()
    # Deadline of one hook call; None means the host's default.
    timeout_ms: int | None = None
    # SHA-256 (hex) a file:// executable must have; checked before every start.
    checksum: str | None = None
    # More configurations by config_id (per-LLM overrides), sent besides `config` at start.
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Why the stored settings cannot be used (a value unreadable from the store): the plugin is
    # failed with this as its error rather than started without them, as a guard without its rules.
    unusable: str | None = None

    def config_for(self, config_id: str) -> Mapping[str, Any]:
        """The configuration named by `config_id` ("" is the plugin's own)."""
        return self.config if not config_id else self.overrides[config_id]


def spec_of(plugin: PluginEntry, overrides: Mapping[str, Mapping[str, Any]]) -> PluginSpec:
    """The host spec of a snapshot's plugin entry, with its per-LLM configurations by config id."""
    return PluginSpec(
        slug=plugin["slug"],
        command=plugin["command"],
        config=dict(plugin.get("config") or {}),
        env=tuple(plugin.get("env") or ()),
        timeout_ms=plugin.get("timeout_ms"),
        checksum=plugin.get("checksum"),
        overrides=overrides,
        unusable=plugin.get("unusable"),
    )
