"""The proxy route /llm/{slug}/{path}: request → hook chains → upstream → response → records."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import structlog
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from solstice import safejson
from solstice.gateway.agents import AgentChats
from solstice.gateway.collector import Collector
from solstice.gateway.http import app_for_key, credential_of, raw_headers, read_limited
from solstice.gateway.openai_errors import openai_error, plugin_failure
from solstice.gateway.pipeline import Blocked, Hooks, PluginFailure, Unauthorized, apply_modify
from solstice.gateway.plugin_endpoints import PluginEndpoints
from solstice.gateway.routes import AppIdentity, ConfigHolder, Route, Step
from solstice.gateway.upstream import Upstream, UpstreamError, UpstreamResponse, forwardable
from solstice.host import PluginHost, PluginNotLoadedError
from solstice.protocol import pb
from solstice.settings import Settings

log = structlog.get_logger("solstice.gateway")

# _finish gives back the response it was handed: a Response, or None after a stream.
_MaybeResponse = TypeVar("_MaybeResponse", Response, None)


def _stopped(stop: Exception) -> Response:
    """The response for a request that ends before (or instead of) the upstream's answer."""
    if isinstance(stop, Blocked):
        response = Response(stop.block.body, status_code=stop.block.status or 403)
        response.raw_headers = raw_headers(
            forwardable([(h.name, h.value) for h in stop.block.headers]), len(stop.block.body)
        )
        return response
    if isinstance(stop, PluginFailure):
        return plugin_failure(stop.slug, stop.hook)
    assert isinstance(stop, Unauthorized | UpstreamError)
    return openai_error(stop.status, str(stop))


def _usage(record: pb.ProxyRecord, payload: Any) -> None:
    if not isinstance(payload, dict):
        return
    record.model = str(payload.get("model") or record.model)
    usage = payload.get("usage")
    if isinstance(usage, dict):
        record.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        record.completion_tokens = int(usage.get("completion_tokens") or 0)
        record.total_tokens = int(
            usage.get("total_tokens") or record.prompt_tokens + record.completion_tokens
        )


def _stream_usage(record: pb.ProxyRecord, body: bytes) -> None:
    for line in body.split(b"\n"):
        if line.startswith(b"data: ") and line[6:].strip() not in (b"", b"[DONE]"):
            try:
                _usage(record, safejson.loads(line[6:]))
            except ValueError:
                continue


class LlmCallRefused(Exception):
    """A plugin's llms.call that cannot be made; `code` is the gRPC status name to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _no_llm(slug: str) -> str:
    return f"no LLM with slug {slug!r}; list LLMs with GET /api/v1/llms"


def _inactive(slug: str) -> str:
    return f"LLM {slug!r} is inactive; activate it with PATCH /api/v1/llms/{slug}"


class Gateway:
    """Serves proxied LLM calls with the current GatewayConfig."""

    def __init__(self, settings: Settings, state: ConfigHolder, host: PluginHost) -> None:
        self.settings = settings
        self.state = state
        self.host = host
        self.hooks = Hooks(host)
        self.upstream = Upstream(settings)
        self.collector = Collector(host, settings)
        self.endpoints = PluginEndpoints(settings, state, host)
        self.agents = AgentChats(settings, state, host)
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start background work (data collection)."""
        self.collector.start()

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        # Held until done: the loop keeps only weak references to tasks.
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Finish stream completion calls, flush records and close upstream connections."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await self.collector.aclose()
        await self.upstream.aclose()

    async def handle(self, request: Request) -> Response:
        """Proxy one request."""
        started = time.perf_counter()
        slug = request.path_params["slug"]
        route = self.state.config.routes.get(slug)
        if route is None:
            return openai_error(404, _no_llm(slug), "llm_not_found")
        if not route.is_active:
            return openai_error(503, _inactive(slug))
        body, problem = await self._read_body(request)
        if problem is not None:
            return problem
        ctx = pb.RequestContext(
            request_id=request.scope.get("state", {}).get("request_id", ""),
            llm=pb.LLM(id=str(route.id), slug=route.slug, vendor=route.vendor),
            trace=pb.TraceContext(
                traceparent=request.headers.get("traceparent", ""),
                tracestate=request.headers.get("tracestate", ""),
            ),
        )
        client = request.client
        message = pb.HttpRequest(
            method=request.method,
            path=request.path_params["path"],
            query=request.url.query,
            headers=[pb.Header(name=k, value=v) for k, v in request.headers.items()],
            body=body,
            remote_addr=f"{client.host}:{client.port}" if client else "",
        )
        return await self._proxy(route, ctx, message, started, credential_of(request))

    async def call_as_plugin(self, caller: str, call: pb.LlmCall, request_id: str) -> Response:
        """One request to an LLM made by plugin `caller` (llms.call); LlmCallRefused if it cannot be made.

        The LLM's hooks run except the caller's own, so a hook that calls an LLM cannot loop
        into itself; auth does not run: the caller's approved scope stands for an app key.
        """
        started = time.perf_counter()
        route = self.state.config.routes.get(call.llm)
        if route is None:
            raise LlmCallRefused("NOT_FOUND", _no_llm(call.llm[:100]))
        if not route.is_active:
            raise LlmCallRefused("FAILED_PRECONDITION", _inactive(route.slug))
        limit = self.settings.gateway_max_body_bytes
        if len(call.body) > limit:
            raise LlmCallRefused("INVALID_ARGUMENT", safejson.body_too_large(limit, len(call.body)))
        headers = [(h.name.lower(), h.value) for h in call.headers]
        if call.body and "json" in dict(headers).get("content-type", "json"):
            try:
                safejson.loads(call.body)
            except safejson.JSONValueError as exc:
                raise LlmCallRefused("INVALID_ARGUMENT", safejson.body_refusal(exc)) from None
        path, _, query = call.path.lstrip("/").partition("?")
        ctx = pb.RequestContext(
            request_id=request_id,
            llm=pb.LLM(id=str(route.id), slug=route.slug, vendor=route.vendor),
            calling_plugin=caller,
        )
        turn = self.agents.turns.get(call.origin_request_id)
        app = self.state.config.apps_by_id.get(turn.app_id) if turn and turn.agent == caller else None
        if app is not None:
            # A call an agent makes for a chat turn is the turn's app's: hooks and records see it.
            ctx.app.CopyFrom(pb.App(id=str(app.id), name=app.name))
        message = pb.HttpRequest(
            method=call.method.upper() or "POST",
            path=path,
            query=query,
            headers=[pb.Header(name=k, value=v) for k, v in headers],
            body=call.body,
        )
        own = {hook: tuple(s for s in steps if s.slug != caller) for hook, steps in route.chains.items()}
        return await self._proxy(dataclasses.replace(route, chains=own), ctx, message, started, None)

    async def _proxy(
        self,
        route: Route,
        ctx: pb.RequestContext,
        message: pb.HttpRequest,
        started: float,
        credential: str | None,
    ) -> Response:
        """Hook chains, upstream, answer; `credential` None is a plugin's call, which is not authenticated."""
        collecting = bool(route.chains["data_collection"])
        record = pb.ProxyRecord(
            timestamp_unix_ms=int(time.time() * 1000),
            method=message.method,
            path=message.path,
            request_body=message.body if collecting else b"",
        )
        try:
            await self.hooks.request_chain(route.chains["pre_auth"], "pre_auth", ctx, message)
            if credential is not None:
                await self._authenticate(route, ctx, message, credential)
            await self.hooks.request_chain(route.chains["post_auth"], "post_auth", ctx, message)
            upstream = await self.upstream.send(
                route, message.method, message.path, message.query,
                [(h.name, h.value) for h in message.headers], message.body,
            )  # fmt: skip
        except (Blocked, Unauthorized, PluginFailure, UpstreamError) as stop:
            return self._finish(route, ctx, record, started, _stopped(stop))
        if upstream.streaming:
            return self._stream(route, ctx, message, record, started, upstream)
        return await self._buffered(route, ctx, message, record, started, upstream)

    async def _read_body(self, request: Request) -> tuple[bytes, Response | None]:
        body, problem = await read_limited(request, self.settings.gateway_max_body_bytes)
        if problem is not None:
            return b"", problem
        if body and "json" in request.headers.get("content-type", "json").lower():
            try:
                # Bounded like API bodies: plugins parse this body too, and deep nesting crashes parsers.
                safejson.loads(body)
            except safejson.JSONValueError as exc:
                return b"", openai_error(400, safejson.body_refusal(exc), "invalid_json")
        return body, None

    async def _authenticate(
        self, route: Route, ctx: pb.RequestContext, message: pb.HttpRequest, credential: str
    ) -> None:
        steps = route.chains["auth"]
        config = self.state.config
        if steps:
            who = await self.hooks.authenticate(steps, ctx, message, credential)
            known = config.apps_by_id.get(int(who.app_id)) if who.app_id.isdigit() else None
            # A registered app keeps its own rules; another id is an identity the plugin owns.
            if known is not None:
                self._check_app(known, route)
            ctx.app.CopyFrom(pb.App(id=who.app_id, name=known.name if known else ""))
            ctx.user_id = who.user_id
            return
        app = app_for_key(config, credential)
        self._check_app(app, route)
        ctx.app.CopyFrom(pb.App(id=str(app.id), name=app.name))

    def _check_app(self, app: AppIdentity, route: Route) -> None:
        if not app.is_active:
            raise Unauthorized(401, f"app {app.name!r} is inactive")
        if route.id not in app.llm_ids:
            raise Unauthorized(
                403, f"app {app.name!r} may not call LLM {route.slug!r}; add it to the app's llms"
            )

    async def _buffered(
        self,
        route: Route,
        ctx: pb.RequestContext,
        message: pb.HttpRequest,
        record: pb.ProxyRecord,
        started: float,
        upstream: UpstreamResponse,
    ) -> Response:
        response = pb.HttpResponse(
            status=upstream.status,
            headers=[pb.Header(name=k, value=v) for k, v in upstream.headers],
            body=upstream.body,
        )
        try:
            await self.hooks.response_chain(route.chains["on_response"], ctx, message, response)
        except (Blocked, PluginFailure) as stop:
            return self._finish(route, ctx, record, started, _stopped(stop))
        if route.chains["data_collection"]:  # usage only matters to data_collection plugins
            with contextlib.suppress(ValueError):
                _usage(record, safejson.loads(response.body))
            record.response_body = response.body
        out = Response(response.body, status_code=response.status)
        out.raw_headers = raw_headers(
            forwardable([(h.name, h.value) for h in response.headers]), len(response.body)
        )
        return self._finish(route, ctx, record, started, out)

    def _stream(
        self,
        route: Route,
        ctx: pb.RequestContext,
        message: pb.HttpRequest,
        record: pb.ProxyRecord,
        started: float,
        upstream: UpstreamResponse,
    ) -> Response:
        chunk_steps = tuple(s for s in route.chains["on_response"] if self._wants_chunks(s))
        assert upstream.chunks is not None
        source = upstream.chunks

        keep = self.settings.gateway_max_response_bytes

        async def relay() -> AsyncIterator[bytes]:
            # A copy of the stream for records and the completion call, capped: the client's
            # stream itself is never held back or limited.
            seen: list[bytes] = []
            kept = 0
            index = 0
            finished = False
            try:
                async for chunk in source:
                    for step in chunk_steps:
                        part = pb.HttpResponse(status=upstream.status, body=chunk)
                        try:
                            answer = await self.hooks.call(
                                step, "on_response", ctx, message, part, pb.RESPONSE_PHASE_STREAM_CHUNK, index
                            )
                        except PluginFailure:
                            answer = None  # the status line is sent: a chunk can only pass unchanged
                        if answer is not None and answer.WhichOneof("action") == "modify":
                            apply_modify(part, answer.modify)
                            chunk = part.body
                    if kept < keep:
                        seen.append(chunk[: keep - kept])
                        kept += len(seen[-1])
                    index += 1
                    yield chunk
                finished = upstream.complete()
            finally:
                record.truncated = not finished
                await upstream.close()
                whole = b"".join(seen)
                _stream_usage(record, whole)
                record.response_body = whole
                self._finish(route, ctx, record, started, None, status=upstream.status)
                self._background(self._stream_end(route, ctx, message, upstream, whole, index))

        streamed = StreamingResponse(relay(), status_code=upstream.status)
        streamed.raw_headers = raw_headers(forwardable(upstream.headers))  # repeated headers stay repeated
        return streamed

    def _wants_chunks(self, step: Step) -> bool:
        try:
            info = self.host.status(step.slug).info
        except PluginNotLoadedError:
            return False
        return bool(info and info.wants_stream_chunks)

    async def _stream_end(
        self,
        route: Route,
        ctx: pb.RequestContext,
        message: pb.HttpRequest,
        upstream: UpstreamResponse,
        whole: bytes,
        chunks: int,
    ) -> None:
        # Informational: the client already has the stream, so answers cannot change it.
        response = pb.HttpResponse(status=upstream.status, body=whole)
        for step in route.chains["on_response"]:
            try:
                await self.hooks.call(
                    step, "on_response", ctx, message, response, pb.RESPONSE_PHASE_STREAM_END, chunks
                )
            except PluginFailure as failure:
                log.warning("on_response after a stream failed", plugin=failure.slug, error=failure.reason)

    def _finish(
        self,
        route: Route,
        ctx: pb.RequestContext,
        record: pb.ProxyRecord,
        started: float,
        response: _MaybeResponse,
        status: int | None = None,
    ) -> _MaybeResponse:
        steps = route.chains["data_collection"]
        if steps:
            record.status = status if status is not None else (response.status_code if response else 0)
            record.latency_ms = int((time.perf_counter() - started) * 1000)
            ctx.config_id = ""
            record.context.CopyFrom(ctx)
            self.collector.submit(steps, record)
        return response
