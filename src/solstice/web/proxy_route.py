"""The LLM proxy route, mounted the same way by the control plane and the edge."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from solstice.endpoints import METHODS

PROXY_PATH = "/llm/{slug}/{path:path}"
PROXY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# A plugin's own root (/plugins/{slug}) is its route "/", like /plugins/{slug}/.
ENDPOINT_PATHS = ("/plugins/{slug}", "/plugins/{slug}/{path:path}")
AGENT_PATH = "/agents/{slug}/chat"


async def _proxy(request: Request) -> Response:
    response: Response = await request.app.state.gateway.handle(request)
    return response


async def _endpoint(request: Request) -> Response:
    response: Response = await request.app.state.gateway.endpoints.handle(request)
    return response


async def _agent(request: Request) -> Response:
    response: Response = await request.app.state.gateway.agents.handle(request)
    return response


def mount_proxy(app: Starlette) -> None:
    """Route /llm/{slug}/…, plugins' /plugins/{slug}/… and /agents/{slug}/chat to the Gateway in
    `app.state.gateway`."""
    app.router.add_route(PROXY_PATH, _proxy, methods=list(PROXY_METHODS), include_in_schema=False)
    for path in ENDPOINT_PATHS:
        app.router.add_route(path, _endpoint, methods=list(METHODS), include_in_schema=False)
    app.router.add_route(AGENT_PATH, _agent, methods=["POST"], include_in_schema=False)
