"""GET /api/v1/sync: an edge's configuration snapshot, long-polled by ETag; each call is a heartbeat."""

from __future__ import annotations

import re
import time

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from solstice.api.auth import Principal, require_edge
from solstice.api.problems import Problem
from solstice.control.snapshot import build_snapshot
from solstice.store.edges import record_sync, reload_generation

router = APIRouter(prefix="/api/v1", tags=["edges"])

EDGE_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")
NAMESPACE = r"^[A-Za-z0-9_.-]{0,100}$"
MAX_WAIT_S = 60.0
# While a long-poll is held, the edge's heartbeat is renewed this often if it is still connected;
# an edge that went away stops renewing it (see OFFLINE_AFTER in api/edges.py).
HEARTBEAT_S = 10.0


def _edge_id(request: Request) -> str:
    edge_id = request.headers.get("x-solstice-edge-id", "")
    if not EDGE_ID.fullmatch(edge_id):
        raise Problem(
            400,
            "send X-Solstice-Edge-Id with a stable id of this edge (letters, digits, '.', '_', '-'; "
            "at most 100)",
        )
    return edge_id


async def _heartbeat(request: Request, edge_id: str, namespace: str) -> int:
    name = request.headers.get("x-solstice-edge-name", "")[:200] or edge_id
    applied = request.headers.get("x-solstice-edge-version", "")[:64]
    address = request.client.host if request.client else ""
    async with request.app.state.sessions.begin() as session:
        row = await record_sync(session, edge_id, name, namespace, address, applied)
        return row.reload_generation


@router.get("/sync")
async def sync(
    request: Request,
    namespace: str = Query(
        "", pattern=NAMESPACE, description="The edge's namespace; empty: global items only."
    ),
    wait: float = Query(
        0, ge=0, le=MAX_WAIT_S, description="Seconds to hold the request while nothing changed."
    ),
    principal: Principal = Depends(require_edge),
) -> Response:
    """The snapshot for `namespace`; with If-None-Match of the current version: 304 after `wait` s."""
    edge_id = _edge_id(request)
    feed = request.app.state.changes
    known = request.headers.get("if-none-match", "").strip().strip('"')
    generation = await _heartbeat(request, edge_id, namespace)
    deadline = time.monotonic() + wait
    while True:
        seen = feed.generation
        async with request.app.state.sessions() as session:
            snapshot = await build_snapshot(session, namespace, generation)
        etag = f'"{snapshot["version"]}"'
        if snapshot["version"] != known:
            return JSONResponse(snapshot, headers={"ETag": etag, "Cache-Control": "no-store"})
        remaining = deadline - time.monotonic()
        if remaining <= 0 or feed.closing:
            return Response(status_code=304, headers={"ETag": etag})
        await feed.wait(seen, min(remaining, HEARTBEAT_S))
        if await request.is_disconnected():
            return Response(status_code=304, headers={"ETag": etag})  # nobody reads it; no heartbeat
        if feed.generation == seen:
            generation = await _heartbeat(request, edge_id, namespace)  # still there, still waiting
            continue
        async with request.app.state.sessions() as session:
            generation = await reload_generation(session, edge_id)
