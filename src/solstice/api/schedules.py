"""/api/v1/plugins/{id}/schedules: a plugin's scheduled tasks and the history of their runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from solstice.api.auth import Principal, require_admin, require_read
from solstice.api.body import documented, json_object
from solstice.api.schemas import (
    ScheduleCreate,
    ScheduleFieldsIn,
    ScheduleList,
    ScheduleOut,
    ScheduleRunOut,
    ScheduleRuns,
)
from solstice.control import schedules
from solstice.control.errors import InvalidError
from solstice.control.manager import PluginManager
from solstice.control.schedules import ScheduleView
from solstice.store.models import ScheduleRunRow

router = APIRouter(prefix="/api/v1/plugins/{ref}/schedules", tags=["schedules"])
# API field -> column, where they differ.
_COLUMNS = {"id": "key", "timeout_seconds": "timeout_s"}


def _manager(request: Request) -> PluginManager:
    manager: PluginManager = request.app.state.manager
    return manager


def _run_out(run: ScheduleRunRow) -> ScheduleRunOut:
    duration = (
        round((run.finished_at - run.started_at).total_seconds() * 1000)
        if run.started_at is not None and run.finished_at is not None
        else None
    )
    return ScheduleRunOut(
        run_id=run.run_id,
        due_at=run.due_at,
        status=run.status,
        catch_up=run.catch_up,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_ms=duration,
        error=run.error,
        message=run.message,
        server=run.server,
    )


def _out(view: ScheduleView) -> ScheduleOut:
    row, last = view.row, view.last_run
    return ScheduleOut(
        id=row.key,
        plugin=view.slug,
        name=row.name,
        cron=row.cron,
        timezone=row.timezone,
        timeout_seconds=row.timeout_s,
        config=dict(row.config or {}),
        catch_up=row.catch_up,
        enabled=row.enabled,
        declared=row.declared,
        customized=row.customized,
        next_run_at=row.next_run_at,
        last_run=_run_out(last) if last is not None else None,
    )


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    return {_COLUMNS.get(name, name): value for name, value in fields.items()}


@router.get("", response_model=ScheduleList)
async def list_all(ref: str, request: Request, principal: Principal = Depends(require_read)) -> ScheduleList:
    """A plugin's schedules, declared and added, with each one's newest run."""
    found = await schedules.list_schedules(_manager(request), ref)
    return ScheduleList(
        data=[
            _out(ScheduleView(found.plugin.slug, row, found.last_runs.get(row.id))) for row in found.schedules
        ]
    )


@router.post("", status_code=201, response_model=ScheduleOut, openapi_extra=documented(ScheduleCreate))
async def create(ref: str, request: Request, principal: Principal = Depends(require_admin)) -> ScheduleOut:
    """Add a schedule to a plugin. Audited."""
    body = ScheduleCreate.model_validate(await json_object(request))
    view = await schedules.create_schedule(
        _manager(request), ref, _columns(body.model_dump(exclude_none=True)), principal.name
    )
    return _out(view)


@router.get("/{sid}", response_model=ScheduleOut)
async def get_one(
    ref: str, sid: str, request: Request, principal: Principal = Depends(require_read)
) -> ScheduleOut:
    """One schedule, by its id within the plugin."""
    return _out(await schedules.get_schedule(_manager(request), ref, sid))


@router.patch("/{sid}", response_model=ScheduleOut, openapi_extra=documented(ScheduleFieldsIn))
async def patch_one(
    ref: str, sid: str, request: Request, principal: Principal = Depends(require_admin)
) -> ScheduleOut:
    """Change a schedule: its timing, deadline, config, catch_up, or enable/disable it. Audited."""
    changes = ScheduleFieldsIn.model_validate(await json_object(request)).model_dump(exclude_unset=True)
    nulls = sorted(name for name, value in changes.items() if value is None)
    if nulls:
        raise InvalidError(f"{nulls[0]} cannot be null; leave it out to keep its value")
    return _out(
        await schedules.update_schedule(_manager(request), ref, sid, _columns(changes), principal.name)
    )


@router.delete("/{sid}", status_code=204, response_class=Response)
async def delete_one(
    ref: str, sid: str, request: Request, principal: Principal = Depends(require_admin)
) -> Response:
    """Remove a schedule added through the API, and its runs; a declared one can only be disabled."""
    await schedules.delete_schedule(_manager(request), ref, sid, principal.name)
    return Response(status_code=204)


@router.get("/{sid}/runs", response_model=ScheduleRuns)
async def runs(
    ref: str,
    sid: str,
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
    principal: Principal = Depends(require_read),
) -> ScheduleRuns:
    """A schedule's runs, newest first: status, due and start times, duration, error."""
    view, found = await schedules.runs(_manager(request), ref, sid, limit, offset)
    return ScheduleRuns(
        plugin=view.slug, schedule=view.row.key, data=[_run_out(r) for r in found], limit=limit, offset=offset
    )
