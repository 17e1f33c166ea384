"""/api/v1/apps: client applications, the LLMs they may call, and their API keys."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from solstice.api.auth import Principal, require_admin, require_read
from solstice.api.body import documented, json_object
from solstice.api.object_changes import changed_by, changes_from, checker, hooks_of, one_change_at_a_time
from solstice.api.schemas import INPUT
from solstice.control.errors import InvalidError, NotFoundError
from solstice.control.object_hooks import blamed_on
from solstice.control.object_views import app_view
from solstice.hooks import AGENT_HOOK, hook_types_of
from solstice.store import audit
from solstice.store.apps import all_apps, create_key, get_app, keys_of, revoke_key
from solstice.store.llms import get_llm
from solstice.store.models import AppKeyRow, AppRow
from solstice.store.plugins import get_plugin

router = APIRouter(prefix="/api/v1/apps", tags=["apps"])


class AppFields(BaseModel):
    """Writable app fields, all optional (PATCH)."""

    model_config = INPUT

    name: str | None = Field(None, min_length=1, max_length=200)
    llms: list[str | int] | None = Field(None, max_length=1000, description="LLM ids or slugs it may call.")
    agents: list[str] | None = Field(
        None,
        max_length=1000,
        description="Slugs of the agent plugins it may chat with at /agents/{slug}/chat.",
    )
    is_active: bool | None = None
    namespace: str | None = Field(
        None, max_length=100, pattern=r"^[A-Za-z0-9_.-]*$", description="Edge namespace; empty: global."
    )


class AppCreate(AppFields):
    """Body of POST."""

    name: str = Field(min_length=1, max_length=200)


class KeyCreate(BaseModel):
    """Body of POST /{id}/keys."""

    model_config = INPUT

    name: str = Field("", max_length=100)


class KeyOut(BaseModel):
    """An app key without its secret."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    """A new key with its secret: shown this once."""

    key: str


class AppOut(BaseModel):
    """An app and its keys (without secrets)."""

    id: int
    name: str
    is_active: bool
    llm_ids: list[int]
    agents: list[str]
    namespace: str
    keys: list[KeyOut]


class AppCreated(AppOut):
    """A new app with its first key's secret: shown this once."""

    key: str


def _key(row: AppKeyRow) -> KeyOut:
    return KeyOut(
        id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at, revoked_at=row.revoked_at
    )


async def _out(request: Request, row: AppRow) -> AppOut:
    async with request.app.state.sessions() as session:
        keys = await keys_of(session, row.id)
    return AppOut(
        id=row.id,
        name=row.name,
        is_active=row.is_active,
        llm_ids=list(row.llm_ids or []),
        agents=list(row.agents or []),
        namespace=row.namespace or "",
        keys=[_key(k) for k in keys],
    )


async def _llm_ids(request: Request, refs: list[str | int]) -> list[int]:
    ids: list[int] = []
    async with request.app.state.sessions() as session:
        for ref in refs:
            llm = await get_llm(session, str(ref))
            if llm is None:
                raise InvalidError(f"no LLM with id or slug {ref!r}; create it with POST /api/v1/llms")
            ids.append(llm.id)
    return sorted(set(ids))


async def _agents(request: Request, refs: list[str]) -> list[str]:
    """The slugs of the agent plugins `refs` name (by slug or id), sorted and without repeats."""
    slugs: set[str] = set()
    async with request.app.state.sessions() as session:
        for ref in refs:
            plugin = await get_plugin(session, ref)
            if plugin is None:
                raise InvalidError(f"no plugin {ref!r} to chat with; register the agent plugin first")
            if AGENT_HOOK not in hook_types_of(plugin.hook_types, plugin.hook_type):
                raise InvalidError(
                    f"plugin {plugin.slug} is not registered for agent, so apps cannot chat with it; "
                    "add agent to its hook_types"
                )
            slugs.add(plugin.slug)
    return sorted(slugs)


async def _find(request: Request, ref: str) -> AppRow:
    async with request.app.state.sessions() as session:
        row = await get_app(session, ref)
    if row is None:
        raise NotFoundError(f"no app with id {ref!r}; list apps with GET /api/v1/apps")
    return row


@router.post("", status_code=201, response_model=AppCreated, openapi_extra=documented(AppCreate))
async def create(request: Request, principal: Principal = Depends(require_admin)) -> AppCreated:
    """Create an app with its first API key (the secret is in this response only)."""
    body = AppCreate.model_validate(await json_object(request))
    proposed = {
        "name": body.name,
        "llms": await _llm_ids(request, body.llms or []),
        "agents": await _agents(request, body.agents or []),
        "is_active": body.is_active if body.is_active is not None else True,
        "namespace": body.namespace or "",
    }
    by = changed_by(request, principal)
    replaced: list[str] = []
    final = await hooks_of(request).before(
        "app", "before_create", proposed, by=by, check=checker(AppCreate), replaced_by=replaced
    )
    with blamed_on(replaced, "app"):
        llm_ids = await _llm_ids(request, final.get("llms", []))
        agents = await _agents(request, final.get("agents", []))
    async with request.app.state.sessions.begin() as session:
        row = AppRow(
            name=final["name"],
            is_active=final.get("is_active", True),
            llm_ids=llm_ids,
            agents=agents,
            namespace=final.get("namespace", ""),
        )
        session.add(row)
        await session.flush()
        _, secret = await create_key(session, row.id, "initial")
        await audit.record(session, principal.name, "app.create", f"app:{row.id}", "ok")
        await hooks_of(request).queue_after(session, "app", "after_create", app_view(row), by=by)
    await request.app.state.routes.refresh()
    return AppCreated(**(await _out(request, row)).model_dump(), key=secret)


@router.get("", response_model=list[AppOut])
async def list_all(request: Request, principal: Principal = Depends(require_read)) -> list[AppOut]:
    """Every app."""
    async with request.app.state.sessions() as session:
        rows = await all_apps(session)
    return [await _out(request, row) for row in rows]


@router.get("/{ref}", response_model=AppOut)
async def get_one(ref: str, request: Request, principal: Principal = Depends(require_read)) -> AppOut:
    """One app."""
    return await _out(request, await _find(request, ref))


@router.patch("/{ref}", response_model=AppOut, openapi_extra=documented(AppFields))
async def patch(ref: str, request: Request, principal: Principal = Depends(require_admin)) -> AppOut:
    """Change an app's name, LLMs, agents or activity."""
    changes = AppFields.model_validate(await json_object(request)).model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        raise InvalidError("app fields cannot be null; leave a field out to keep its value")
    found = await _find(request, ref)
    if "llms" in changes:
        changes["llms"] = await _llm_ids(request, changes["llms"])
    if "agents" in changes:
        changes["agents"] = await _agents(request, changes["agents"])
    by = changed_by(request, principal)
    async with one_change_at_a_time("app", found.id):
        current = await _find(request, str(found.id))
        view = app_view(current)
        replaced: list[str] = []
        final = await hooks_of(request).before(
            "app",
            "before_update",
            {**view, **changes},
            by=by,
            previous=view,
            check=checker(AppFields, unset=True),
            replaced_by=replaced,
        )
        changes = changes_from(view, final)
        with blamed_on(replaced, "app"):
            llm_ids = await _llm_ids(request, changes.pop("llms")) if "llms" in changes else None
            if "agents" in changes:
                changes["agents"] = await _agents(request, changes["agents"])
        async with request.app.state.sessions.begin() as session:
            row = await session.get(AppRow, current.id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"app {current.id} was deleted meanwhile")
            previous = app_view(row)
            for key, value in changes.items():
                setattr(row, key, value)
            if llm_ids is not None:
                row.llm_ids = llm_ids
            await audit.record(session, principal.name, "app.update", f"app:{row.id}", "ok")
            if changes or llm_ids is not None:
                await hooks_of(request).queue_after(
                    session, "app", "after_update", app_view(row), by=by, previous=previous
                )
    await request.app.state.routes.refresh()
    return await _out(request, row)


@router.delete("/{ref}", status_code=204, response_class=Response)
async def delete(ref: str, request: Request, principal: Principal = Depends(require_admin)) -> Response:
    """Remove an app and its keys."""
    found = await _find(request, ref)
    by = changed_by(request, principal)
    async with one_change_at_a_time("app", found.id):
        current = await _find(request, str(found.id))
        await hooks_of(request).before("app", "before_delete", app_view(current), by=by)
        async with request.app.state.sessions.begin() as session:
            # Locked first: the notifications of changes that committed before this one come first.
            row = await session.get(AppRow, current.id, with_for_update=True)
            if row is not None:
                await hooks_of(request).queue_after(session, "app", "after_delete", app_view(row), by=by)
                await session.delete(row)
            await audit.record(session, principal.name, "app.delete", f"app:{current.id}", "ok")
    await request.app.state.routes.refresh()
    return Response(status_code=204)


@router.post("/{ref}/keys", status_code=201, response_model=KeyCreated, openapi_extra=documented(KeyCreate))
async def add_key(ref: str, request: Request, principal: Principal = Depends(require_admin)) -> KeyCreated:
    """Create another key for an app (the secret is in this response only)."""
    body = KeyCreate.model_validate(await json_object(request))
    app = await _find(request, ref)
    async with request.app.state.sessions.begin() as session:
        row, secret = await create_key(session, app.id, body.name)
        await audit.record(session, principal.name, "app.key.create", f"app:{app.id}", "ok", body.name)
    await request.app.state.routes.refresh()
    return KeyCreated(**_key(row).model_dump(), key=secret)


@router.delete("/{ref}/keys/{key_id}", response_model=KeyOut)
async def revoke(
    ref: str, key_id: int, request: Request, principal: Principal = Depends(require_admin)
) -> KeyOut:
    """Revoke one key; it stops working at once."""
    app = await _find(request, ref)
    async with request.app.state.sessions.begin() as session:
        row = await revoke_key(session, app.id, key_id) if key_id <= 2**31 - 1 else None
        if row is None:
            raise NotFoundError(f"app {app.id} has no key {key_id}")
        await audit.record(session, principal.name, "app.key.revoke", f"app:{app.id}", "ok", str(key_id))
    await request.app.state.routes.refresh()
    return _key(row)
