"""LLMs, apps and plugins as object hooks see them: their writable fields and id, never a secret."""

from __future__ import annotations

from typing import Any

from solstice.security.upstreams import strip_credentials
from solstice.store.models import AppRow, LLMRow, PluginRow


def llm_view(row: LLMRow) -> dict[str, Any]:
    """An LLM without its upstream key (`has_api_key` says whether it has one)."""
    return {
        "id": row.id,
        "name": row.name,
        "slug": row.slug,
        "vendor": row.vendor,
        "upstream_url": strip_credentials(row.upstream_url or ""),
        "has_api_key": bool(row.api_key),
        "is_active": row.is_active,
        "options": dict(row.options or {}),
        "namespace": row.namespace or "",
    }


def app_view(row: AppRow) -> dict[str, Any]:
    """An app without its keys: `llms` holds the ids of the LLMs it may call, `agents` the agents'
    slugs."""
    return {
        "id": row.id,
        "name": row.name,
        "llms": list(row.llm_ids or []),
        "agents": list(row.agents or []),
        "is_active": row.is_active,
        "namespace": row.namespace or "",
    }


def plugin_view(row: PluginRow) -> dict[str, Any]:
    """A plugin's definition as the API takes it (`global` for is_global)."""
    return {
        "id": row.id,
        "name": row.name,
        "slug": row.slug,
        "description": row.description or "",
        "command": row.command,
        "oci_reference": row.oci_reference,
        "hook_type": row.hook_type,
        "hook_types": list(row.hook_types or []),
        "plugin_type": row.plugin_type,
        "is_active": row.is_active,
        "config": dict(row.config or {}),
        "namespace": row.namespace or "",
        "checksum": row.checksum,
        "timeout_ms": row.timeout_ms,
        "failure_policy": row.failure_policy,
        "env": list(row.env or []),
        "global": row.is_global,
    }
