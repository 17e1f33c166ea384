"""The edges that sync from this control plane, and asking them to reload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from solstice.api.auth import Principal, require_admin, require_read
from solstice.api.sync import HEARTBEAT_S, NAMESPACE
from solstice.control.errors import NotFoundError
from solstice.control.snapshot import build_snapshot
from solstice.store import audit
from solstice.store.edges import all_edges, request_reload

router = APIRouter(prefix="/api/v1", tags=["edges"])

# A connected edge's heartbeat is renewed every HEARTBEAT_S, even while its long-poll is held, and
# it polls again at once after each answer: longer silence means its connection dropped and it did
# not come back (stopped, or cut off).
OFFLINE_AFTER = timedelta(seconds=HEARTBEAT_S + 15)


class EdgeOut(BaseModel):
    """An edge as its last sync described it."""

    id: str
    name: str
    namespace: str
    address: str
    applied_version: str
    current_version: str
    in_sync: bool
    online: bool
    first_seen: datetime
    last_seen: datetime
    reload_generation: int


class ReloadRequested(BaseModel):
    """Which edges were asked to reload."""

    edges: int


@router.get("/edges", response_model=list[EdgeOut])
async def list_edges(request: Request, principal: Principal = Depends(require_read)) -> list[EdgeOut]:
    """Every edge, with the configuration version it runs and the one it should run."""
    now = datetime.now(UTC)
    out = []
    async with request.app.state.sessions() as session:
        for row in await all_edges(session):
            current = (await build_snapshot(session, row.namespace, row.reload_generation))["version"]
            out.append(
                EdgeOut(
                    id=row.id,
                    name=row.name,
                    namespace=row.namespace,
                    address=row.address,
                    applied_version=row.applied_version,
                    current_version=current,
                    in_sync=row.applied_version == current,
                    online=now - row.last_seen < OFFLINE_AFTER,
                    first_seen=row.first_seen,
                    last_seen=row.last_seen,
                    reload_generation=row.reload_generation,
                )
            )
    return out


async def _reload(request: Request, principal: Principal, target: str, **which: str) -> ReloadRequested:
    async with request.app.state.sessions.begin() as session:
        count = await request_reload(session, **which)
        await audit.record(session, principal.name, "edge.reload", target, "ok", f"{count} edge(s)")
    await request.app.state.changes.changed()
    return ReloadRequested(edges=count)


@router.post("/edges/{edge_id}/reload", status_code=202, response_model=ReloadRequested)
async def reload_edge(
    edge_id: str, request: Request, principal: Principal = Depends(require_admin)
) -> ReloadRequested:
    """Ask one edge to reload all its plugins at its next sync (within its long-poll)."""
    answer = await _reload(request, principal, f"edge:{edge_id}", edge_id=edge_id)
    if answer.edges == 0:
        raise NotFoundError(f"no edge with id {edge_id!r}; list edges with GET /api/v1/edges")
    return answer


@router.post("/namespaces/{namespace}/reload", status_code=202, response_model=ReloadRequested)
async def reload_namespace(
    request: Request,
    namespace: str = Path(pattern=NAMESPACE),
    principal: Principal = Depends(require_admin),
) -> ReloadRequested:
    """Ask every edge of a namespace to reload all its plugins."""
    return await _reload(request, principal, f"namespace:{namespace}", namespace=namespace)
