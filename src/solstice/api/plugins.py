"""/api/v1/plugins: create, list, read, change, delete, reload and health of plugins."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from solstice.api.auth import Principal, require_admin, require_read
from solstice.api.body import documented, json_object
from solstice.api.object_changes import changed_by, changes_from, checker, hooks_of, one_change_at_a_time
from solstice.api.schemas import (
    RESERVED_SLUGS,
    DataCleared,
    HealthReport,
    HealthSummary,
    PluginCreate,
    PluginFields,
    PluginHealth,
    PluginOut,
    PluginPage,
    PluginScopes,
    RouteOut,
    ScopeApproval,
    ScopeChange,
)
from solstice.commands import OciCommand, parse_command
from solstice.control import grants
from solstice.control.errors import ConflictError, InvalidError, RefusedError
from solstice.control.grants import ScopeState, pending_scopes, requested_scopes
from solstice.control.manager import PluginManager
from solstice.control.object_hooks import blamed_on
from solstice.control.object_views import plugin_view
from solstice.control.specs import live_status
from solstice.hooks import OBJECT_HOOK, default_failure_policy, hook_types_of
from solstice.host import PluginNotLoadedError
from solstice.oci.errors import InvalidReferenceError
from solstice.oci.reference import parse_reference
from solstice.safejson import unreadable_reason
from solstice.security.policy import PolicyError
from solstice.store.models import PluginRow
from solstice.store.plugins import MAX_ID, PluginFilter, list_plugins, slug_taken
from solstice.store.scopes import all_approvals, approvals_of

router = APIRouter(prefix="/api/v1/plugins", tags=["plugins"])
_DERIVED_SLUG_ATTEMPTS = 20


def _manager(request: Request) -> PluginManager:
    manager: PluginManager = request.app.state.manager
    return manager


def render(row: PluginRow, manager: PluginManager, approved: Sequence[str]) -> PluginOut:
    """The API view of a stored plugin, with its live status; `approved` are its approved scopes."""
    status, error = live_status(row, manager.host)
    requested = requested_scopes(row, manager)
    return PluginOut(
        id=row.id,
        name=row.name,
        slug=row.slug,
        description=row.description or "",
        command=row.command,
        oci_reference=row.oci_reference,
        hook_type=row.hook_type,
        hook_types=hook_types_of(row.hook_types, row.hook_type),
        plugin_type=row.plugin_type,
        is_active=row.is_active,
        config=dict(row.config or {}),
        namespace=row.namespace or "",
        checksum=row.checksum,
        timeout_ms=row.timeout_ms,
        failure_policy=row.failure_policy or default_failure_policy(row.hook_type),
        env=list(row.env or []),
        is_global=row.is_global,
        status=status,
        last_error=error,
        warnings=[*(row.warnings or []), *_unreadable(row)],
        digest=row.digest,
        routes=_routes(row, manager),
        requested_scopes=requested,
        pending_scopes=pending_scopes(requested, approved),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _routes(row: PluginRow, manager: PluginManager) -> list[RouteOut]:
    """The routes the running instance declared ([] when it does not run here)."""
    try:
        routes = manager.host.status(row.slug).routes
    except PluginNotLoadedError:
        return []
    if not row.is_active:
        return []
    return [
        RouteOut(
            path=r.path,
            methods=sorted(r.methods),
            description=r.description,
            require_auth=r.require_auth,
            stream=r.stream,
        )
        for r in routes
    ]


async def _render(row: PluginRow, manager: PluginManager) -> PluginOut:
    async with manager.sessions() as session:
        approved = [a.scope for a in await approvals_of(session, row.id)]
    return render(row, manager, approved)


def _unreadable(row: PluginRow) -> list[str]:
    """A warning per stored JSON field that could not be read back (it is shown empty)."""
    fields = {"config": row.config, "hook_types": row.hook_types, "env": row.env, "warnings": row.warnings}
    return [
        f"the stored {name} cannot be read (it {reason}); set it again with PUT /api/v1/plugins/{row.slug}"
        for name, reason in ((n, unreadable_reason(v)) for n, v in fields.items())
        if reason is not None
    ]


async def _check_command(manager: PluginManager, command: str, oci_reference: str | None) -> list[str]:
    """Apply the security policy (400 with its reason) and the oci_reference rule; the warnings."""
    try:
        verdict = await manager.host.policy.check(command, "api")
    except PolicyError as exc:
        raise RefusedError(str(exc)) from None
    parsed = parse_command(command)
    if oci_reference:
        if not isinstance(parsed, OciCommand):
            raise InvalidError(f"oci_reference is set but command {command!r} is not an oci:// command")
        try:
            given = parse_reference(oci_reference)
        except InvalidReferenceError as exc:
            raise InvalidError(f"oci_reference: {exc}") from None
        if given.image != parsed.reference.image:
            raise InvalidError(
                f"oci_reference {oci_reference!r} does not match command {command!r}; "
                "give the same image in both"
            )
    return list(verdict.warnings)


def _normalise_hooks(hook_type: str | None, hook_types: list[str] | None) -> tuple[str, list[str]]:
    """hook_type is the primary hook and always one of hook_types."""
    types = list(hook_types or [])
    primary = hook_type or types[0]
    if primary not in types:
        types.insert(0, primary)
    return primary, types


def slugify(name: str) -> str:
    """A slug derived from a plugin name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:90].strip("-")
    return slug if slug and slug not in RESERVED_SLUGS else f"plugin-{slug}".strip("-")


async def _free_slug(manager: PluginManager, name: str) -> str:
    base = slugify(name)
    async with manager.sessions() as session:
        candidate, n = base, 1
        while await slug_taken(session, candidate):
            n += 1
            candidate = f"{base}-{n}"
    return candidate


@router.post("", status_code=201, response_model=PluginOut, openapi_extra=documented(PluginCreate))
async def create_plugin(request: Request, principal: Principal = Depends(require_admin)) -> PluginOut:
    """Register a plugin; an active one is started (a failed start is stored with its error)."""
    body = PluginCreate.model_validate(await json_object(request))
    proposed = body.model_dump(by_alias=True, exclude_none=True)
    replaced: list[str] = []
    final = await hooks_of(request).before(
        "plugin",
        "before_create",
        proposed,
        by=changed_by(request, principal),
        check=checker(PluginCreate, by_alias=True, nullable=_NULLABLE),
        replaced_by=replaced,
    )
    if final != proposed:
        body = PluginCreate.model_validate(final)
    with blamed_on(replaced, "plugin"):
        return await _create(request, principal, body)


async def _create(request: Request, principal: Principal, body: PluginCreate) -> PluginOut:
    manager = _manager(request)
    warnings = await _check_command(manager, body.command, body.oci_reference)
    values: dict[str, Any] = body.model_dump(exclude_none=True)
    values["warnings"] = warnings
    values["hook_type"], values["hook_types"] = _normalise_hooks(body.hook_type, body.hook_types)
    values.setdefault("is_active", True)
    if body.slug:
        return await _render(await manager.create(values, principal.name), manager)
    for _ in range(_DERIVED_SLUG_ATTEMPTS):
        # Concurrent creates may derive the same slug; the loser takes the next free one.
        values["slug"] = await _free_slug(manager, body.name)
        try:
            return await _render(await manager.create(values, principal.name), manager)
        except ConflictError:
            continue
    raise ConflictError(f"could not derive a free slug from name {body.name!r}; pass a slug")


@router.get("", response_model=PluginPage)
async def list_all(
    request: Request,
    hook_type: str | None = None,
    is_active: bool | None = None,
    namespace: str | None = None,
    plugin_type: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_ID),
    principal: Principal = Depends(require_read),
) -> PluginPage:
    """Plugins, filtered and paginated; `total` counts every match."""
    manager = _manager(request)
    where = PluginFilter(
        hook_type=hook_type, is_active=is_active, namespace=namespace, plugin_type=plugin_type
    )
    async with manager.sessions() as session:
        rows, total = await list_plugins(session, where, limit, offset)
        approvals = await all_approvals(session)
    data = [render(r, manager, approvals.get(r.id, [])) for r in rows]
    return PluginPage(data=data, total=total, limit=limit, offset=offset)


def _health(row: PluginRow, manager: PluginManager) -> PluginHealth:
    status, error = live_status(row, manager.host)
    try:
        live = manager.host.status(row.slug) if row.is_active else None
    except PluginNotLoadedError:
        live = None
    return PluginHealth(
        id=row.id,
        slug=row.slug,
        status=status,
        last_check_at=_timestamp(live.last_check_at) if live else None,
        last_check_latency_ms=live.last_check_latency_ms if live else None,
        restarts=live.restarts if live else 0,
        uptime_s=live.uptime_s if live else None,
        pid=live.pid if live else None,
        digest=(live.digest if live else None) or row.digest,
        last_error=error,
    )


def _timestamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


@router.get("/health", response_model=HealthReport)
async def health_all(request: Request, principal: Principal = Depends(require_read)) -> HealthReport:
    """Health of every plugin and a count by status."""
    manager = _manager(request)
    async with manager.sessions() as session:
        rows, total = await list_plugins(session, PluginFilter(), limit=1_000_000, offset=0)
    plugins = [_health(row, manager) for row in rows]
    summary = HealthSummary(total=total, by_status=dict(Counter(p.status for p in plugins)))
    return HealthReport(plugins=plugins, summary=summary)


@router.get("/{ref}", response_model=PluginOut)
async def get_one(ref: str, request: Request, principal: Principal = Depends(require_read)) -> PluginOut:
    """One plugin, by numeric id or slug."""
    manager = _manager(request)
    return await _render(await manager.get(ref), manager)


# What PUT stores for optional fields a client leaves out.
_PUT_DEFAULTS: dict[str, Any] = {
    "description": "",
    "plugin_type": "gateway",
    "is_active": True,
    "config": {},
    "namespace": "",
    "timeout_ms": 1000,
    "env": [],
    "is_global": False,
}
_NULLABLE = frozenset({"oci_reference", "checksum", "failure_policy"})
# Field names whose JSON name differs (PluginFields.is_global is "global"), both ways.
_ALIASES = {"is_global": "global"}
_NAMES = {alias: name for name, alias in _ALIASES.items()}


async def _change(request: Request, ref: str, principal: Principal, replace: bool) -> PluginOut:
    manager = _manager(request)
    data = await json_object(request)
    found = await manager.get(ref)
    async with one_change_at_a_time("plugin", found.id):
        return await _change_one(request, manager, str(found.id), data, principal, replace)


async def _change_one(
    request: Request,
    manager: PluginManager,
    ref: str,
    data: dict[str, Any],
    principal: Principal,
    replace: bool,
) -> PluginOut:
    current = await manager.get(ref)
    if replace:
        full = PluginCreate.model_validate(data)
        changes: dict[str, Any] = full.model_dump()
        for key, default in _PUT_DEFAULTS.items():
            if changes[key] is None:
                changes[key] = default
        changes["slug"] = full.slug or current.slug
    else:
        changes = PluginFields.model_validate(data).model_dump(exclude_unset=True)
        nulls = sorted(k for k, v in changes.items() if v is None and k not in _NULLABLE)
        if nulls:
            raise InvalidError(f"{nulls[0]} cannot be null; leave it out to keep its value")
    changes, replaced = await _hooked_update(request, principal, current, changes)
    with blamed_on(replaced, "plugin"):
        if "command" in changes or "oci_reference" in changes:
            # Only a new command is checked: a plugin the policy now refuses can still be deactivated.
            changes["warnings"] = await _check_command(
                manager,
                changes.get("command", current.command),
                changes.get("oci_reference", current.oci_reference),
            )
        if "hook_type" in changes or "hook_types" in changes:
            hook_types = changes.get("hook_types") or current.hook_types
            hook_type = changes.get("hook_type") or (
                hook_types[0] if "hook_types" in changes else current.hook_type
            )
            changes["hook_type"], changes["hook_types"] = _normalise_hooks(hook_type, hook_types)
        row = await manager.update(ref, changes, principal.name)
        return await _render(row, manager)


def _switches_off_policy(current: PluginRow, changes: dict[str, Any] | None) -> bool:
    """Deleting (no changes) or only deactivating a plugin that hooks objects: no hook may stop that,
    so two policy plugins can never lock each other (and the operator) out."""
    if OBJECT_HOOK not in hook_types_of(current.hook_types, current.hook_type):
        return False
    if changes is None:
        return True
    view = plugin_view(current)
    changed = {k for k, v in changes.items() if view.get(_ALIASES.get(k, k)) != v}
    return changed == {"is_active"} and changes["is_active"] is False


async def _hooked_update(
    request: Request, principal: Principal, current: PluginRow, changes: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """`changes` after the before_update hooks of other plugins, which may change them further,
    and the plugins that did."""
    replaced: list[str] = []
    if _switches_off_policy(current, changes):
        return changes, replaced
    view = plugin_view(current)
    proposed = {**view, **{_ALIASES.get(k, k): v for k, v in changes.items()}}
    final = await hooks_of(request).before(
        "plugin",
        "before_update",
        proposed,
        by=changed_by(request, principal),
        previous=view,
        subject=current.slug,
        check=checker(PluginFields, unset=True, by_alias=True, nullable=_NULLABLE),
        replaced_by=replaced,
    )
    named = {_NAMES.get(k, k): v for k, v in changes_from(proposed, final).items()}
    return {**changes, **named}, replaced


@router.patch("/{ref}", response_model=PluginOut, openapi_extra=documented(PluginFields))
async def patch_one(ref: str, request: Request, principal: Principal = Depends(require_admin)) -> PluginOut:
    """Change some fields of a plugin; a running plugin is reloaded when its runtime settings change."""
    return await _change(request, ref, principal, replace=False)


@router.put("/{ref}", response_model=PluginOut, openapi_extra=documented(PluginCreate))
async def put_one(ref: str, request: Request, principal: Principal = Depends(require_admin)) -> PluginOut:
    """Replace a plugin's definition (the slug stays)."""
    return await _change(request, ref, principal, replace=True)


@router.delete("/{ref}", status_code=204, response_class=Response)
async def delete_one(ref: str, request: Request, principal: Principal = Depends(require_admin)) -> Response:
    """Stop and remove a plugin."""
    manager = _manager(request)
    found = await manager.get(ref)
    async with one_change_at_a_time("plugin", found.id):
        current = await manager.get(str(found.id))
        if not _switches_off_policy(current, None):
            await hooks_of(request).before(
                "plugin",
                "before_delete",
                plugin_view(current),
                by=changed_by(request, principal),
                subject=current.slug,
            )
        await manager.delete(str(current.id), principal.name)
    return Response(status_code=204)


@router.post("/{ref}/reload", response_model=PluginOut)
async def reload_one(ref: str, request: Request, principal: Principal = Depends(require_admin)) -> PluginOut:
    """Start a fresh instance and switch to it; 502 (old instance kept) when it fails."""
    manager = _manager(request)
    return await _render(await manager.reload(ref, principal.name), manager)


@router.get("/{ref}/health", response_model=PluginHealth)
async def health_one(
    ref: str, request: Request, principal: Principal = Depends(require_read)
) -> PluginHealth:
    """Runtime health of one plugin."""
    manager = _manager(request)
    return _health(await manager.get(ref), manager)


def _scopes_out(state: ScopeState) -> PluginScopes:
    return PluginScopes(
        plugin=state.slug,
        requested=state.requested,
        approved=[
            ScopeApproval(scope=a.scope, approved_by=a.approved_by, approved_at=a.approved_at)
            for a in state.approved
        ],
        pending=state.pending,
    )


@router.get("/{ref}/scopes", response_model=PluginScopes)
async def get_scopes(
    ref: str, request: Request, principal: Principal = Depends(require_read)
) -> PluginScopes:
    """The host service API scopes a plugin requests, those approved, and those pending."""
    return _scopes_out(await grants.scope_state(_manager(request), ref))


@router.post("/{ref}/scopes/approve", response_model=PluginScopes, openapi_extra=documented(ScopeChange))
async def approve_scopes(
    ref: str, request: Request, principal: Principal = Depends(require_admin)
) -> PluginScopes:
    """Approve scopes; the plugin's next call may use them, without a reload. Audited."""
    body = ScopeChange.model_validate(await json_object(request))
    return _scopes_out(await grants.approve(_manager(request), ref, body.scopes, principal.name))


@router.post("/{ref}/scopes/revoke", response_model=PluginScopes, openapi_extra=documented(ScopeChange))
async def revoke_scopes(
    ref: str, request: Request, principal: Principal = Depends(require_admin)
) -> PluginScopes:
    """Withdraw approvals; the plugin's next call under them is refused. Audited."""
    body = ScopeChange.model_validate(await json_object(request))
    return _scopes_out(await grants.revoke(_manager(request), ref, body.scopes, principal.name))


@router.delete("/{ref}/data", response_model=DataCleared)
async def delete_data(
    ref: str, request: Request, principal: Principal = Depends(require_admin)
) -> DataCleared:
    """Remove every key the plugin stored with kv.*. Audited."""
    manager = _manager(request)
    row = await manager.get(ref)
    return DataCleared(plugin=row.slug, deleted_keys=await grants.clear_data(manager, ref, principal.name))
