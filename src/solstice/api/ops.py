"""Operational endpoints: liveness, readiness and Prometheus metrics (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from solstice.store.health import health_of, probe

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and can write, and the plugins stored at start were loaded."""
    state = request.app.state
    checks: dict[str, str] = {}
    engine = state.sessions.kw["bind"]
    try:
        async with state.sessions() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    # After a failed write (full disk, read-only), only a write that succeeds makes us ready again.
    if checks["database"] == "ok" and health_of(engine).failure is not None:
        reason = await probe(engine)
        if reason is not None:
            checks["database"] = f"not writable: {reason}"
    checks["plugins"] = "ok" if state.manager.ready else "loading"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/metrics")
async def metrics() -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
