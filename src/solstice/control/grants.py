"""What an operator lets a plugin do and keep: its approved scopes and its stored data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from solstice.control.errors import InvalidError
from solstice.control.manager import PluginManager
from solstice.host import PluginNotLoadedError
from solstice.scopes import SCOPES, ScopeError, check_scopes, grants
from solstice.store import audit, plugin_data
from solstice.store import scopes as stored_scopes
from solstice.store.models import PluginRow, PluginScopeRow


@dataclass(frozen=True)
class ScopeState:
    """A plugin's scopes: requested by the plugin, approved by operators, and what is still pending."""

    slug: str
    requested: list[str]
    approved: list[PluginScopeRow]
    pending: list[str]


def requested_scopes(row: PluginRow, manager: PluginManager) -> list[str]:
    """What the plugin asks for: its running instance's declaration, else the last one stored."""
    try:
        info = manager.host.status(row.slug).info
    except PluginNotLoadedError:
        info = None
    if info is not None and row.is_active:
        return sorted(set(info.scopes))
    return sorted(row.requested_scopes or [])


def pending_scopes(requested: Sequence[str], approved: Sequence[str]) -> list[str]:
    """Requested scopes no approval covers."""
    return [scope for scope in requested if not grants(approved, scope)]


async def scope_state(manager: PluginManager, ref: str) -> ScopeState:
    """A plugin's scopes, by id or slug."""
    row = await manager.get(ref)
    async with manager.sessions() as session:
        approved = await stored_scopes.approvals_of(session, row.id)
    requested = requested_scopes(row, manager)
    return ScopeState(row.slug, requested, approved, pending_scopes(requested, [a.scope for a in approved]))


def _checked(names: Sequence[str]) -> list[str]:
    if not names:
        raise InvalidError(f"scopes is empty; name one or more of: {', '.join(SCOPES)}")
    try:
        return list(check_scopes(names))
    except ScopeError as exc:
        raise InvalidError(str(exc)) from None


async def approve(manager: PluginManager, ref: str, names: Sequence[str], actor: str) -> ScopeState:
    """Approve scopes for a plugin (requested or not yet); takes effect at its next call, no reload."""
    return await _change(manager, ref, names, actor, "approve")


async def revoke(manager: PluginManager, ref: str, names: Sequence[str], actor: str) -> ScopeState:
    """Withdraw approvals; the plugin's next call under them is refused."""
    return await _change(manager, ref, names, actor, "revoke")


async def _change(
    manager: PluginManager, ref: str, names: Sequence[str], actor: str, how: Literal["approve", "revoke"]
) -> ScopeState:
    scopes = _checked(names)
    row = await manager.get(ref)
    async with manager.sessions.begin() as session:
        if how == "approve":
            await stored_scopes.approve(session, row.id, scopes, actor)
        else:
            held = [a.scope for a in await stored_scopes.approvals_of(session, row.id)]
            _refuse_implied(row.slug, held, scopes)
            await stored_scopes.revoke(session, row.id, scopes)
        await audit.record(session, actor, f"plugin.scopes.{how}", row.slug, "ok", ", ".join(scopes))
    await manager.notify()  # the gateway configuration carries approvals to every runtime
    return await scope_state(manager, row.slug)


def _refuse_implied(slug: str, held: Sequence[str], revoking: Sequence[str]) -> None:
    """Revoking a scope that a broader approval still grants would change nothing: say so instead."""
    for scope in revoking:
        broader = [h for h in held if h != scope and h not in revoking and grants([h], scope)]
        if broader:
            raise InvalidError(
                f"plugin {slug} holds {scope} through its approval of {broader[0]}; "
                f"revoke {broader[0]} instead (and approve {scope} alone if it should keep it)"
            )


async def clear_data(manager: PluginManager, ref: str, actor: str) -> int:
    """Remove everything a plugin stored with kv.*; how many keys it held."""
    row = await manager.get(ref)
    async with manager.sessions.begin() as session:
        removed = await plugin_data.clear(session, row.id)
        await audit.record(session, actor, "plugin.data.delete", row.slug, "ok", f"{removed} keys")
    return removed
