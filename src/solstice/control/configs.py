"""Per-LLM plugin configuration: deep merge of overrides and stable configuration ids."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


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
