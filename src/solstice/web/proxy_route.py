"""The LLM proxy route, mounted the same way by the control plane and the edge."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

PROXY_PATH = "/llm/{slug}/{path:path}"
PROXY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


async def _proxy(request: Request) -> Response:
    response: Response = await request.app.state.gateway.handle(request)
    return response


def mount_proxy(app: Starlette) -> None:
    """Route /llm/{slug}/… to the Gateway held in `app.state.gateway`."""
    app.router.add_route(PROXY_PATH, _proxy, methods=list(PROXY_METHODS), include_in_schema=False)
