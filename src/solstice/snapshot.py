"""The snapshot: what a gateway serves (plugins, LLMs with their chains, apps), as one document.

The control plane builds it from its store and sends it to edges; an edge may read it from
plugins.yaml instead. Its version is a hash of the content, so it changes exactly when something
a gateway serves changes, and it doubles as the HTTP ETag of the sync endpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

SNAPSHOT_FORMAT = 1


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
