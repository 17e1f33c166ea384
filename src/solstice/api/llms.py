"""/api/v1/llms: the upstream LLMs the gateway serves, and their plugin chains."""

from __future__ import annotations

from typing import Any, Literal

import structlog
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.exc import IntegrityError

from solstice.api.auth import Principal, require_admin, require_read
from solstice.api.body import documented, json_object
from solstice.api.object_changes import changed_by, changes_from, checker, hooks_of, one_change_at_a_time
from solstice.api.plugins import slugify
from solstice.api.schemas import INPUT
from solstice.control.chains import ChainEntry, set_chain
from solstice.control.errors import ConflictError, InvalidError, NotFoundError, RefusedError
from solstice.control.object_hooks import blamed_on
from solstice.control.object_views import app_view, llm_view
from solstice.gateway import mock
from solstice.safejson import JSONObject, unreadable_reason
from solstice.sealing import keyring_of
from solstice.security.upstreams import (
    UpstreamAllowlistError,
    UpstreamPolicy,
    UpstreamRefused,
    origin_of,
    strip_credentials,
)
from solstice.snapshot import SLUG_PATTERN
from solstice.store import audit
from solstice.store.apps import all_apps
from solstice.store.llms import all_llms, chain_of, get_llm
from solstice.store.models import LLMRow

log = structlog.get_logger("solstice.api")
router = APIRouter(prefix="/api/v1/llms", tags=["llms"])
Vendor = Literal["openai", "mock"]


class LLMFields(BaseModel):
    """Writable LLM fields, all optional (PATCH)."""

    model_config = INPUT

    name: str | None = Field(None, min_length=1, max_length=200)
    slug: str | None = Field(None, pattern=SLUG_PATTERN)
    vendor: Vendor | None = None
    upstream_url: str | None = Field(None, max_length=2048)
    api_key: str | None = Field(None, max_length=4096)
    is_active: bool | None = None
    options: JSONObject | None = None
    namespace: str | None = Field(
        None, max_length=100, pattern=r"^[A-Za-z0-9_.-]*$", description="Edge namespace; empty: global."
    )

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else dict(mock.check_options(value))

    @field_validator("upstream_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            # Credentials in the URL are refused by _check_upstream (400) and never echoed.
            raise ValueError(f"upstream_url {strip_credentials(value)!r} must start with http:// or https://")
        return value.rstrip("/") if value else value


class LLMCreate(LLMFields):
    """Body of POST."""

    name: str = Field(min_length=1, max_length=200)
    vendor: Vendor = "openai"


class LLMOut(BaseModel):
    """An LLM as the API returns it: the API key is never included."""

    id: int
    name: str
    slug: str
    vendor: str
    upstream_url: str
    has_api_key: bool
    is_active: bool
    options: dict[str, Any]
    namespace: str


class ChainEntryOut(BaseModel):
    """One plugin of an LLM's chain."""

    plugin_id: int
    plugin: str
    position: int
    config_override: dict[str, Any]
    timeout_ms: int | None
    failure_policy: str | None
    warnings: list[str] = Field(default_factory=list)


class ChainIn(BaseModel):
    """Body of PUT /{id}/plugins: the whole chain, in order."""

    model_config = INPUT

    plugins: list[ChainEntry] = Field(max_length=64)


def _out(row: LLMRow) -> LLMOut:
    return LLMOut(
        id=row.id,
        name=row.name,
        slug=row.slug,
        vendor=row.vendor,
        # Rows stored before credentials in URLs were refused must not echo them.
        upstream_url=strip_credentials(row.upstream_url),
        has_api_key=bool(row.api_key),
        is_active=row.is_active,
        options=dict(row.options or {}),
        namespace=row.namespace or "",
    )


async def _find(request: Request, ref: str) -> LLMRow:
    async with request.app.state.sessions() as session:
        row = await get_llm(session, ref)
    if row is None:
        raise NotFoundError(f"no LLM with id or slug {ref!r}; list LLMs with GET /api/v1/llms")
    return row


def _check_vendor(vendor: str, upstream_url: str) -> None:
    if vendor == "openai" and not upstream_url:
        raise InvalidError("an openai LLM needs upstream_url, e.g. https://api.openai.com/v1")


async def _check_upstream(request: Request, url: str, slug: str) -> None:
    """Credentials in the URL and internal addresses are refused (400), as for plugin commands."""
    if not url:
        return
    try:
        verdict = await UpstreamPolicy.from_settings(request.app.state.settings).check_url(url, "api")
    except (UpstreamRefused, UpstreamAllowlistError) as exc:
        raise RefusedError(str(exc)) from None
    for warning in verdict.warnings:
        log.warning(warning, llm=slug, upstream_url=url)


def _check_key_follows(current: LLMRow, changes: dict[str, Any]) -> None:
    """A stored key is sent only to the origin it was given for: a new origin needs it again."""
    if "upstream_url" not in changes or "api_key" in changes or not current.api_key:
        return
    before, after = origin_of(current.upstream_url), origin_of(changes["upstream_url"])
    if before != after:
        raise InvalidError(
            f"upstream_url moves LLM {current.slug} from {before or 'no upstream'} to {after}, and its "
            'stored api_key is not sent to another host; send api_key again in the same request ("" for none)'
        )


@router.post("", status_code=201, response_model=LLMOut, openapi_extra=documented(LLMCreate))
async def create(request: Request, principal: Principal = Depends(require_admin)) -> LLMOut:
    """Register an upstream LLM."""
    body = LLMCreate.model_validate(await json_object(request))
    values = body.model_dump(exclude_none=True)
    values["slug"] = body.slug or slugify(body.name)
    secret = values.pop("api_key", None)
    # Credentials in the URL are refused before any hook could see them.
    await _check_upstream(request, values.get("upstream_url") or "", values["slug"])
    proposed = {"upstream_url": "", "is_active": True, "options": {}, "namespace": "", **values}
    by = changed_by(request, principal)
    replaced: list[str] = []
    values = await hooks_of(request).before(
        "llm", "before_create", proposed, by=by, check=checker(LLMCreate), replaced_by=replaced
    )
    with blamed_on(replaced, "llm"):
        values.setdefault("slug", slugify(values["name"]))
        _refuse_moved_key(values["slug"], proposed, values, holds_key=secret is not None)
        if secret is not None:
            values["api_key"] = secret
        _check_vendor(values["vendor"], values.get("upstream_url") or "")
        if values.get("upstream_url") != proposed["upstream_url"]:
            await _check_upstream(request, values.get("upstream_url") or "", values["slug"])
        async with request.app.state.sessions.begin() as session:
            if await get_llm(session, values["slug"]) is not None:
                raise ConflictError(
                    f"an LLM with slug {values['slug']!r} already exists; choose another slug"
                )
            values["api_key"] = keyring_of(session).seal(values.get("api_key", ""))
            row = LLMRow(**{"upstream_url": "", "options": {}, **values})
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                raise ConflictError(
                    f"an LLM with slug {values['slug']!r} already exists; choose another slug"
                ) from None
            await audit.record(session, principal.name, "llm.create", row.slug, "ok")
            await hooks_of(request).queue_after(session, "llm", "after_create", llm_view(row), by=by)
    await request.app.state.routes.refresh()
    return _out(row)


def _refuse_moved_key(slug: str, proposed: dict[str, Any], final: dict[str, Any], holds_key: bool) -> None:
    """A key goes only to the host its sender chose: an object hook may not move it elsewhere."""
    before, after = origin_of(proposed.get("upstream_url") or ""), origin_of(final.get("upstream_url") or "")
    if holds_key and before != after:
        raise InvalidError(
            f"an object hook moved LLM {slug} from {before or 'no upstream'} to {after or 'no upstream'}, "
            "and its api_key is only sent where its sender chose; change upstream_url yourself, with the key"
        )


@router.get("", response_model=list[LLMOut])
async def list_all(request: Request, principal: Principal = Depends(require_read)) -> list[LLMOut]:
    """Every LLM."""
    async with request.app.state.sessions() as session:
        return [_out(row) for row in await all_llms(session)]


@router.get("/{ref}", response_model=LLMOut)
async def get_one(ref: str, request: Request, principal: Principal = Depends(require_read)) -> LLMOut:
    """One LLM by id or slug."""
    return _out(await _find(request, ref))


@router.patch("/{ref}", response_model=LLMOut, openapi_extra=documented(LLMFields))
async def patch(ref: str, request: Request, principal: Principal = Depends(require_admin)) -> LLMOut:
    """Change some fields of an LLM."""
    changes = LLMFields.model_validate(await json_object(request)).model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        raise InvalidError("LLM fields cannot be null; leave a field out to keep its value")
    found = await _find(request, ref)
    by = changed_by(request, principal)
    async with one_change_at_a_time("llm", found.id):
        current = await _find(request, str(found.id))
        secret = changes.pop("api_key", None)
        if "upstream_url" in changes:
            await _check_upstream(request, changes["upstream_url"], current.slug)
        view = llm_view(current)
        proposed = {**view, **changes}
        replaced: list[str] = []
        final = await hooks_of(request).before(
            "llm",
            "before_update",
            proposed,
            previous=view,
            by=by,
            check=checker(LLMFields, unset=True),
            replaced_by=replaced,
        )
        with blamed_on(replaced, "llm"):
            _refuse_moved_key(
                current.slug, proposed, final, holds_key=secret is not None or bool(current.api_key)
            )
            changes = changes_from(view, final)
            if secret is not None:
                changes["api_key"] = secret
            if "slug" in changes and changes["slug"] != current.slug:
                raise InvalidError("an LLM's slug cannot be changed; create a new LLM")
            _check_vendor(
                changes.get("vendor", current.vendor), changes.get("upstream_url", current.upstream_url)
            )
            _check_key_follows(current, changes)
            if "upstream_url" in changes and changes["upstream_url"] != proposed.get("upstream_url"):
                await _check_upstream(request, changes["upstream_url"], current.slug)
            async with request.app.state.sessions.begin() as session:
                row = await session.get(LLMRow, current.id, with_for_update=True)
                if row is None:
                    raise NotFoundError(f"LLM {current.slug} was deleted meanwhile")
                previous = llm_view(row)
                if "api_key" in changes:
                    changes["api_key"] = keyring_of(session).seal(changes["api_key"])
                for key, value in changes.items():
                    setattr(row, key, value)
                await audit.record(
                    session, principal.name, "llm.update", row.slug, "ok", ", ".join(sorted(changes))
                )
                if changes:
                    await hooks_of(request).queue_after(
                        session, "llm", "after_update", llm_view(row), previous=previous, by=by
                    )
    await request.app.state.routes.refresh()
    return _out(row)


@router.delete("/{ref}", status_code=204, response_class=Response)
async def delete(ref: str, request: Request, principal: Principal = Depends(require_admin)) -> Response:
    """Remove an LLM and its chain; apps that could call it no longer can."""
    found = await _find(request, ref)
    by = changed_by(request, principal)
    hooks = hooks_of(request)
    async with one_change_at_a_time("llm", found.id):
        current = await _find(request, str(found.id))
        await hooks.before("llm", "before_delete", llm_view(current), by=by)
        async with request.app.state.sessions.begin() as session:
            # Locked first: the notifications of changes that committed before this one come first.
            row = await session.get(LLMRow, current.id, with_for_update=True)
            if row is not None:
                await hooks.queue_after(session, "llm", "after_delete", llm_view(row), by=by)
                await session.delete(row)
            for app in await all_apps(session):
                if current.id in (app.llm_ids or []):
                    previous = app_view(app)
                    app.llm_ids = [i for i in app.llm_ids if i != current.id]
                    await hooks.queue_after(
                        session, "app", "after_update", app_view(app), previous=previous, by=by
                    )
            await audit.record(session, principal.name, "llm.delete", current.slug, "ok")
    await request.app.state.routes.refresh()
    return Response(status_code=204)


def _unreadable_warnings(value: object, field: str, llm: str) -> list[str]:
    reason = unreadable_reason(value)
    if reason is None:
        return []
    return [
        f"the stored {field} cannot be read (it {reason}); "
        f"set the chain again with PUT /api/v1/llms/{llm}/plugins"
    ]


async def _chain(request: Request, llm: LLMRow) -> list[ChainEntryOut]:
    async with request.app.state.sessions() as session:
        rows = await chain_of(session, llm.id)
    return [
        ChainEntryOut(
            plugin_id=plugin.id,
            plugin=plugin.slug,
            position=entry.position,
            config_override=dict(entry.config_override or {}),
            timeout_ms=entry.timeout_ms,
            failure_policy=entry.failure_policy,
            warnings=_unreadable_warnings(entry.config_override, "config_override", llm.slug),
        )
        for entry, plugin in rows
    ]


@router.get("/{ref}/plugins", response_model=list[ChainEntryOut])
async def get_chain(
    ref: str, request: Request, principal: Principal = Depends(require_read)
) -> list[ChainEntryOut]:
    """An LLM's plugin chain, in order."""
    return await _chain(request, await _find(request, ref))


@router.put("/{ref}/plugins", response_model=list[ChainEntryOut], openapi_extra=documented(ChainIn))
async def put_chain(
    ref: str, request: Request, principal: Principal = Depends(require_admin)
) -> list[ChainEntryOut]:
    """Replace an LLM's plugin chain; plugins with new overrides must accept them first."""
    body = ChainIn.model_validate(await json_object(request))
    llm = await _find(request, ref)
    await set_chain(request.app.state.manager, llm, body.plugins, principal.name)
    await request.app.state.routes.refresh()
    return await _chain(request, llm)
