"""The custom endpoint route /plugins/{slug}/{path}: the plugin's route, the app key check when the
route asks for it, the plugin's answer relayed (whole or as it streams)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator

import structlog
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from solstice.endpoints import Route, find_route
from solstice.gateway.http import app_for_key, credential_of, raw_headers, read_limited
from solstice.gateway.openai_errors import openai_error
from solstice.gateway.pipeline import Unauthorized
from solstice.gateway.routes import ConfigHolder
from solstice.gateway.upstream import forwardable
from solstice.host import PluginCallError, PluginHost, PluginNotLoadedError
from solstice.metrics import ENDPOINT_DURATION, ENDPOINT_REQUESTS
from solstice.protocol import pb
from solstice.settings import Settings

log = structlog.get_logger("solstice.gateway")

# The app key is the platform's credential, checked here: a plugin never sees it.
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key"})


class PluginCallFailed(Exception):
    """A plugin call that failed; the response to send instead."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _failure(slug: str, error: PluginCallError) -> Response:
    """502, 503 or 504 naming the plugin; the details stay in the log."""
    log.warning("custom endpoint call failed", plugin=slug, code=error.code, error=str(error))
    if error.code == "DEADLINE_EXCEEDED":
        return openai_error(504, f"plugin {slug} did not answer in time", "plugin_timeout")
    if error.code in ("UNAVAILABLE", "CANCELLED"):
        return openai_error(503, f"plugin {slug} is not available; try again shortly", "plugin_unavailable")
    return openai_error(502, f"plugin {slug} failed to answer the request", "plugin_failed")


def _malformed(slug: str, what: str) -> Response:
    log.warning("custom endpoint answer refused", plugin=slug, problem=what)
    return openai_error(502, f"plugin {slug} answered with a malformed response", "plugin_failed")


def _head(slug: str, answer: pb.HttpResponse, length: int | None) -> tuple[int, list[tuple[bytes, bytes]]]:
    if not 200 <= answer.status <= 599:
        raise PluginCallFailed(_malformed(slug, f"status {answer.status}"))
    try:
        return answer.status, raw_headers(forwardable([(h.name, h.value) for h in answer.headers]), length)
    except UnicodeEncodeError:
        raise PluginCallFailed(_malformed(slug, "a header that is not Latin-1")) from None


class PluginEndpoints:
    """Serves the routes plugins declared, with the current GatewayConfig."""

    def __init__(self, settings: Settings, state: ConfigHolder, host: PluginHost) -> None:
        self.settings = settings
        self.state = state
        self.host = host

    async def handle(self, request: Request) -> Response:
        """Answer one request under /plugins/{slug}/."""
        slug = request.path_params["slug"]
        path = "/" + request.path_params.get("path", "")
        if slug not in self.state.config.endpoint_plugins:
            return openai_error(
                404,
                f"no active plugin {slug!r} serves endpoints; register it with hook_types "
                "including custom_endpoint",
                "plugin_not_found",
            )
        try:
            status = self.host.status(slug)
        except PluginNotLoadedError:
            status = None
        if status is None or status.info is None:  # loading, restarting or failed: no routes known
            return openai_error(503, f"plugin {slug} is not running; try again shortly", "plugin_unavailable")
        found = find_route(status.routes, request.method, path)
        if found is None:
            return self._no_route(slug, status.routes, request.method, path)
        route, params = found
        started = time.perf_counter()
        response = await self._serve(request, slug, route, params)
        ENDPOINT_REQUESTS.labels(slug, route.path, str(response.status_code)).inc()
        ENDPOINT_DURATION.labels(slug, route.path).observe(time.perf_counter() - started)
        return response

    async def _serve(self, request: Request, slug: str, route: Route, params: dict[str, str]) -> Response:
        body, problem = await read_limited(request, self.settings.gateway_max_body_bytes)
        if problem is not None:
            return problem
        message = self._message(request, body, route, params, slug)
        if route.require_auth:
            try:
                app = app_for_key(self.state.config, credential_of(request))
            except Unauthorized as refusal:
                return openai_error(refusal.status, str(refusal))
            if not app.is_active:
                return openai_error(401, f"app {app.name!r} is inactive")
            message.context.app.CopyFrom(pb.App(id=str(app.id), name=app.name))
            message.authenticated = True
        try:
            if route.stream:
                return await self._stream(slug, message)
            return await self._unary(slug, message)
        except PluginCallFailed as failed:
            return failed.response

    def _no_route(self, slug: str, routes: tuple[Route, ...], method: str, path: str) -> Response:
        allowed = sorted({m for r in routes if r.match(path) is not None for m in r.methods})
        if allowed:
            response = openai_error(
                405, f"plugin {slug} serves {path} for {', '.join(allowed)}, not {method}"
            )
            response.headers["allow"] = ", ".join(allowed)
            return response
        return openai_error(404, f"plugin {slug} has no route for {method} {path}", "route_not_found")

    def _message(
        self, request: Request, body: bytes, route: Route, params: dict[str, str], slug: str
    ) -> pb.EndpointRequest:
        client = request.client
        return pb.EndpointRequest(
            context=pb.RequestContext(
                request_id=request.scope.get("state", {}).get("request_id", ""),
                trace=pb.TraceContext(
                    traceparent=request.headers.get("traceparent", ""),
                    tracestate=request.headers.get("tracestate", ""),
                ),
            ),
            request=pb.HttpRequest(
                method=request.method,
                path="/" + request.path_params.get("path", ""),
                query=request.url.query,
                headers=[
                    pb.Header(name=k, value=v)
                    for k, v in request.headers.items()
                    if k.lower() not in _CREDENTIAL_HEADERS
                ],
                body=body,
                remote_addr=f"{client.host}:{client.port}" if client else "",
            ),
            route=route.path,
            params=params,
        )

    async def _unary(self, slug: str, message: pb.EndpointRequest) -> Response:
        try:
            answer = await self.host.client(slug).handle_endpoint(
                message, timeout=self.settings.plugin_endpoint_timeout
            )
        except PluginCallError as error:
            raise PluginCallFailed(_failure(slug, error)) from None
        status, headers = _head(slug, answer, len(answer.body))
        response = Response(answer.body, status_code=status)
        response.raw_headers = headers
        return response

    async def _stream(self, slug: str, message: pb.EndpointRequest) -> Response:
        chunks = self.host.client(slug).handle_endpoint_stream(
            message, timeout=self.settings.plugin_endpoint_stream_timeout
        )
        try:
            first = await anext(chunks, None)
        except PluginCallError as error:
            raise PluginCallFailed(_failure(slug, error)) from None
        if first is None or first.WhichOneof("part") != "head":
            await chunks.aclose()
            raise PluginCallFailed(_malformed(slug, "a stream that did not start with its head"))
        try:
            status, headers = _head(slug, first.head, None)
        except PluginCallFailed:
            await chunks.aclose()
            raise
        response = StreamingResponse(self._relay(slug, chunks), status_code=status)
        response.raw_headers = headers
        return response

    async def _relay(self, slug: str, chunks: AsyncGenerator[pb.EndpointChunk, None]) -> AsyncIterator[bytes]:
        # Runs while the response streams: a failure now can only end the body early.
        async with contextlib.aclosing(chunks):
            try:
                async for chunk in chunks:
                    if chunk.WhichOneof("part") == "body":
                        yield chunk.body
            except PluginCallError as error:
                log.warning(
                    "custom endpoint stream ended early", plugin=slug, code=error.code, error=str(error)
                )
