"""The snapshot: what a gateway serves (plugins, LLMs with their chains, apps), as one document.

The control plane builds it from its store and sends it to edges; an edge may read it from
plugins.yaml instead. Its version is a hash of the content, so it changes exactly when something
a gateway serves changes, and it doubles as the HTTP ETag of the sync endpoint.
"""

# No `from __future__ import annotations`: TypedDict reads NotRequired only from evaluated annotations.
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, NotRequired, TypedDict, cast

from solstice.hooks import FailurePolicy

SNAPSHOT_FORMAT = 1
# The slug of a plugin or an LLM: its name in URLs, in plugins.yaml and in the snapshot's chains.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,99}$"


class PluginEntry(TypedDict):
    """A plugin as the snapshot carries it."""

    slug: str
    command: str
    config: dict[str, Any]
    hook_type: str
    # Every hook it serves, hook_type first (hooks.hook_types_of reads a row stored before lists).
    hook_types: list[str]
    plugin_type: str
    is_active: bool
    is_global: bool
    timeout_ms: int
    failure_policy: FailurePolicy | None
    env: list[str]
    checksum: str | None
    namespace: str
    # For oci:// plugins the digest the control plane resolved: a change makes edges reload.
    digest: str | None
    # Host service API scopes an operator approved (on an edge from plugins.yaml: `scopes`);
    # read with .get(), since a snapshot saved by an older server has none.
    approved_scopes: list[str]
    # Only from a control plane: the display name, and the revision every change and every
    # POST /plugins/{id}/reload bumps (edges reload with the control plane).
    name: NotRequired[str]
    revision: NotRequired[int]
    # Why the stored settings cannot be used: the edge fails the plugin with this reason instead
    # of running it without its settings.
    unusable: NotRequired[str]


class ChainEntry(TypedDict):
    """One plugin in an LLM's chain, with what this LLM changes about it."""

    plugin: str
    position: int
    config_override: dict[str, Any]
    timeout_ms: int | None
    failure_policy: FailurePolicy | None


class LLMEntry(TypedDict):
    """An LLM: its upstream and its plugin chain in order."""

    id: int
    slug: str
    name: str
    vendor: str
    upstream_url: str
    # In the clear on the wire (edges encrypt their copy on disk).
    api_key: str
    is_active: bool
    options: dict[str, Any]
    namespace: str
    chain: list[ChainEntry]


class AppEntry(TypedDict):
    """An app: the LLMs it may call and the hashes of its live keys."""

    id: int
    name: str
    is_active: bool
    namespace: str
    llm_ids: list[int]
    key_hashes: list[str]
    # Agent plugins (slugs) it may chat with; absent in snapshots of older servers.
    agents: NotRequired[list[str]]


class Snapshot(TypedDict):
    """Everything a gateway serves; `namespace` None is the control plane's own view of all namespaces."""

    format: int
    namespace: str | None
    reload_generation: int
    plugins: list[PluginEntry]
    llms: list[LLMEntry]
    apps: list[AppEntry]
    version: str


def new_snapshot(
    namespace: str | None,
    reload_generation: int,
    plugins: list[PluginEntry],
    llms: list[LLMEntry],
    apps: list[AppEntry],
) -> Snapshot:
    """A snapshot of these items, with its version."""
    snapshot: Snapshot = {
        "format": SNAPSHOT_FORMAT,
        "namespace": namespace,
        "reload_generation": reload_generation,
        "plugins": plugins,
        "llms": llms,
        "apps": apps,
        "version": "",
    }
    snapshot["version"] = version_of(snapshot)
    return snapshot


def as_snapshot(document: Mapping[str, Any]) -> Snapshot:
    """A snapshot an edge received (from its control plane, its disk or plugins.yaml) as its type.

    Only Solstice writes these documents, with new_snapshot(), and the sync source checks that the
    version matches the content; readers still use .get() for fields older snapshots may lack.
    """
    return cast(Snapshot, document)


def overrides_of(
    config: Mapping[str, Any], overrides: Iterable[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The configurations a plugin needs besides `config`: one per distinct override, by config id."""
    effective = (deep_merge(config, override) for override in overrides if override)
    return {config_id_for(merged): merged for merged in effective}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `override` applied: maps merge key by key, everything else (lists too) replaces."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def config_id_for(config: Mapping[str, Any]) -> str:
    """A stable id of a configuration: equal configs share one id (and one plugin object)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return "c" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def version_of(snapshot: Mapping[str, Any]) -> str:
    """The content hash of a snapshot (without its own version field)."""
    content = {k: v for k, v in snapshot.items() if k != "version"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
