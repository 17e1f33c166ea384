"""Adapts a Plugin to the generated gRPC service, with one plugin object per configuration."""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from solstice.hooks import AGENT_HOOK, ENDPOINT_HOOK, HOOK_ENUMS, OBJECT_HOOK, TASK_HOOK
from solstice.protocol import pb, pb_grpc
from solstice.protocol.handshake import LINK_METADATA, NOT_CONFIGURED
from solstice.scopes import OBJECTS_SCOPE, SCHEDULES_SCOPE, check_scopes
from solstice.sdk.agents import Chat
from solstice.sdk.host import Host, Link, serving
from solstice.sdk.objects import ObjectChange
from solstice.sdk.plugin import Plugin
from solstice.sdk.routes import RouteSpec, respond, routes_of
from solstice.sdk.tasks import Task

log = logging.getLogger("solstice.sdk")

# Configurations one process keeps; the host re-sends an evicted one when it is used again.
MAX_CONFIGS = 1024

_T = TypeVar("_T")
# What grpc.aio hands each method.
Context = grpc.aio.ServicerContext[Any, Any]


async def _resolve(value: _T | Awaitable[_T]) -> _T:
    return await value if inspect.isawaitable(value) else value


def _serve_for(context: Context, request_id: str = "") -> None:
    """Note which host's RPC this task serves, so the plugin's calls go back over its channel."""
    # A plugin's own unit tests may call a method with no context at all.
    metadata = context.invocation_metadata() if context is not None else None
    link = next((value for key, value in metadata or () if key == LINK_METADATA), "")
    serving(link if isinstance(link, str) else link.decode(), request_id)


class PluginServicer(pb_grpc.PluginServicer):
    """Serves a Plugin over solstice.plugin.v1.

    The plugin's own configuration (config_id "") goes to the object given to serve(); each
    other config_id (a per-LLM override) gets a fresh object of the same class.
    """

    def __init__(self, plugin: Plugin) -> None:
        self._plugin = plugin
        self._hooks = set(type(plugin).implemented_hooks())
        # One path may have several routes, for different methods.
        self._routes = routes_of(type(plugin))
        if self._routes:
            self._hooks.add(ENDPOINT_HOOK)
        self._configured: dict[str, Plugin] = {}
        cls = type(plugin)
        if cls.schedules and not cls.runs_tasks():
            raise TypeError(f"plugin {cls.__name__} declares schedules but does not implement run_task")
        if cls.runs_tasks():
            self._hooks.add(TASK_HOOK)
        if cls.hooks_objects():
            if cls.on_object is Plugin.on_object:
                raise TypeError(
                    f"plugin {cls.__name__} declares object_hooks but does not implement on_object"
                )
            self._hooks.add(OBJECT_HOOK)
        if cls.is_agent():
            self._hooks.add(AGENT_HOOK)
        implied = [
            *([SCHEDULES_SCOPE] if cls.runs_tasks() else []),
            *([OBJECTS_SCOPE] if cls.hooks_objects() else []),
        ]
        # Refused here, before the handshake, so a misspelt scope fails the start with its name.
        self._scopes = check_scopes([*cls.scopes, *implied])
        # One Host for every configured object, so they all share the process's service channel.
        self._host: Host = plugin.host

    def _object_for(self, config_id: str) -> Plugin:
        if not config_id:
            return self._plugin
        existing = self._configured.get(config_id)
        if existing is not None:
            return existing
        try:
            fresh = type(self._plugin)()
        except TypeError:  # a constructor that needs arguments: copy the original instead
            fresh = copy.copy(self._plugin)
            fresh.__dict__ = copy.deepcopy(
                {k: v for k, v in self._plugin.__dict__.items() if k != "_solstice_host"}
            )
        fresh.__dict__["_solstice_host"] = self._host
        return fresh

    async def GetInfo(self, request: pb.GetInfoRequest, context: Context) -> pb.PluginInfo:
        cls = type(self._plugin)
        return pb.PluginInfo(
            name=cls.name or cls.__name__,
            version=cls.version,
            description=cls.description,
            hooks=[HOOK_ENUMS[name] for name in cls.implemented_hooks()]
            + ([HOOK_ENUMS[ENDPOINT_HOOK]] if self._routes else [])
            + ([HOOK_ENUMS[TASK_HOOK]] if cls.runs_tasks() else [])
            + ([HOOK_ENUMS[OBJECT_HOOK]] if cls.hooks_objects() else [])
            + ([HOOK_ENUMS[AGENT_HOOK]] if cls.is_agent() else []),
            config_schema_json=json.dumps(cls.config_schema) if cls.config_schema else "",
            wants_stream_chunks=cls.wants_stream_chunks,
            endpoints=[spec.as_endpoint() for spec in self._routes],
            scopes=self._scopes,
            schedules=[schedule.as_message() for schedule in cls.schedules],
            object_hooks=[hook.as_message() for hook in cls.object_hooks],
        )

    async def HostChannel(
        self, request_iterator: AsyncIterator[pb.HostMessage], context: Context
    ) -> AsyncIterator[pb.ServiceCall]:
        """Carry the plugin's calls to Solstice and Solstice's replies back, while the host keeps it open."""
        first = await anext(request_iterator, None)
        if first is None or first.WhichOneof("part") != "hello":
            return
        link = Link(first.hello.plugin_slug, first.hello.link)
        reader = asyncio.create_task(self._read_replies(link, request_iterator))
        self._host.attach(link)
        try:
            while (call := await link.outbox.get()) is not None:
                yield call
        finally:
            self._host.detach(link)
            reader.cancel()

    @staticmethod
    async def _read_replies(link: Link, messages: AsyncIterator[pb.HostMessage]) -> None:
        try:
            async for message in messages:
                if message.WhichOneof("part") == "reply":
                    link.deliver(message.reply)
        finally:
            link.close()  # the host ended the stream: end ours, fail what still waits

    async def Configure(self, request: pb.ConfigureRequest, context: Context) -> pb.ConfigureResponse:
        _serve_for(context)
        try:
            config = json.loads(request.config_json) if request.config_json else {}
        except json.JSONDecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"config is not valid JSON: {exc}")
        if not isinstance(config, dict):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"config must be a JSON object, got {type(config).__name__}",
            )
        target = self._object_for(request.config_id)
        # A subclass may make configure async, whatever the base class declares.
        configure: Callable[[dict[str, Any]], object] = target.configure
        try:
            await _resolve(configure(config))
        except (ValueError, TypeError, KeyError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid config: {exc}")
        if request.config_id not in self._configured and len(self._configured) >= MAX_CONFIGS:
            oldest = next(k for k in self._configured if k)  # insertion order: evict the oldest override
            del self._configured[oldest]
        self._configured[request.config_id] = target
        return pb.ConfigureResponse()

    async def _call(
        self,
        hook: str,
        context: Context,
        config_id: str,
        call: Callable[[Plugin], _T | Awaitable[_T]],
        request_id: str = "",
    ) -> _T:
        """`call` on the object configured as `config_id`; a failure aborts the RPC."""
        _serve_for(context, request_id)
        if hook not in self._hooks:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED, f"plugin {type(self._plugin).__name__} has no {hook} hook"
            )
        target = self._configured.get(config_id)
        if target is None:
            await context.abort(
                grpc.StatusCode[NOT_CONFIGURED],
                f"plugin is not configured with config_id {config_id!r}; the host must call Configure",
            )
        try:
            return await _resolve(call(target))
        except Exception as exc:  # a plugin bug must reach the host as an error, not kill the server
            log.exception("%s hook failed", hook)
            await context.abort(grpc.StatusCode.INTERNAL, f"{hook} failed: {type(exc).__name__}: {exc}")

    async def PreAuth(self, request: pb.PreAuthRequest, context: Context) -> pb.HookResponse:
        ctx = request.context
        return await self._call(
            "pre_auth", context, ctx.config_id, lambda p: p.pre_auth(ctx, request.request), ctx.request_id
        )

    async def Auth(self, request: pb.AuthRequest, context: Context) -> pb.AuthResponse:
        ctx = request.context
        return await self._call(
            "auth",
            context,
            ctx.config_id,
            lambda p: p.auth(ctx, request.request, request.credential),
            ctx.request_id,
        )

    async def PostAuth(self, request: pb.PostAuthRequest, context: Context) -> pb.HookResponse:
        ctx = request.context
        return await self._call(
            "post_auth", context, ctx.config_id, lambda p: p.post_auth(ctx, request.request), ctx.request_id
        )

    async def OnResponse(self, request: pb.OnResponseRequest, context: Context) -> pb.HookResponse:
        ctx = request.context
        return await self._call(
            "on_response",
            context,
            ctx.config_id,
            lambda p: p.on_response(
                ctx, request.request, request.response, request.phase, request.chunk_index
            ),
            ctx.request_id,
        )

    async def DataCollection(
        self, request: pb.DataCollectionRequest, context: Context
    ) -> pb.DataCollectionResponse:
        records = list(request.records)
        accepted = await self._call(
            "data_collection", context, request.config_id, lambda p: p.data_collection(records)
        )
        return pb.DataCollectionResponse(accepted=int(accepted or 0))

    async def RunTask(self, request: pb.TaskRequest, context: Context) -> pb.TaskResult:
        async def run(target: Plugin) -> pb.TaskResult:
            # A failing task is a result the host records, not an error of the call.
            try:
                task = Task.from_request(request)
                if inspect.iscoroutinefunction(target.run_task):
                    summary = await target.run_task(task)
                else:
                    # A plain method runs in a thread, so it does not hold up health checks and
                    # other calls; past its deadline its result is dropped, but it cannot be stopped.
                    summary = await _resolve(await asyncio.to_thread(target.run_task, task))
            except Exception as exc:
                log.exception("scheduled task %s failed", request.schedule_id)
                return pb.TaskResult(error=f"{type(exc).__name__}: {exc}")
            return pb.TaskResult(message="" if summary is None else str(summary))

        return await self._call(TASK_HOOK, context, "", run, request.context.request_id)

    async def HandleObjectHook(
        self, request: pb.ObjectHookRequest, context: Context
    ) -> pb.ObjectHookResponse:
        async def judge(target: Plugin) -> pb.ObjectHookResponse:
            answer = await _resolve(target.on_object(ObjectChange.from_request(request)))
            if answer is None:
                return pb.ObjectHookResponse(allow=pb.AllowObject())
            if not isinstance(answer, pb.ObjectHookResponse):
                raise TypeError(
                    f"on_object answered {type(answer).__name__}; "
                    "return allow_object(), reject_object(reason) or replace_object(obj)"
                )
            return answer

        return await self._call(OBJECT_HOOK, context, "", judge, request.context.request_id)

    async def HandleAgentMessage(
        self, request: pb.AgentRequest, context: Context
    ) -> AsyncIterator[pb.AgentChunk]:
        target = await self._call(AGENT_HOOK, context, "", lambda p: p, request.context.request_id)
        pieces = target.chat(Chat.from_request(request))
        if not hasattr(pieces, "__aiter__"):
            await context.abort(
                grpc.StatusCode.INTERNAL, "chat must be an async generator (async def with yield)"
            )
        try:
            async for piece in pieces:
                chunk = (
                    pb.AgentChunk(type=pb.AGENT_CHUNK_CONTENT, content=piece)
                    if isinstance(piece, str)
                    else piece
                )
                if not isinstance(chunk, pb.AgentChunk):
                    raise TypeError(
                        f"chat yielded {type(piece).__name__}; yield str or content(), thinking(), …"
                    )
                yield chunk
                if chunk.type in (pb.AGENT_CHUNK_DONE, pb.AGENT_CHUNK_ERROR):
                    return
        except Exception:  # the user sees that the answer failed; the details stay in the plugin's log
            log.exception("chat failed")
            yield pb.AgentChunk(
                type=pb.AGENT_CHUNK_ERROR, content="the agent failed to answer; try again later"
            )
            return
        yield pb.AgentChunk(type=pb.AGENT_CHUNK_DONE)

    async def _route(self, request: pb.EndpointRequest, context: Context, stream: bool) -> RouteSpec:
        method = request.request.method
        spec = next((r for r in self._routes if r.path == request.route and method in r.methods), None)
        if spec is None or spec.stream != stream:
            kind = "streamed" if stream else "unary"
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"plugin {type(self._plugin).__name__} has no {kind} route {method} {request.route!r}",
            )
        return spec

    async def HandleEndpoint(self, request: pb.EndpointRequest, context: Context) -> pb.HttpResponse:
        spec = await self._route(request, context, stream=False)
        target = await self._call(
            ENDPOINT_HOOK, context, request.context.config_id, lambda p: p, request.context.request_id
        )
        try:
            answer = await _resolve(getattr(target, spec.handler)(request))
        except Exception as exc:  # a plugin bug must reach the host as an error, not kill the server
            log.exception("route %s failed", spec.path)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"route {spec.path} failed: {type(exc).__name__}: {exc}"
            )
        if not isinstance(answer, pb.HttpResponse):
            await context.abort(
                grpc.StatusCode.INTERNAL,
                f"route {spec.path} answered {type(answer).__name__}; return respond(...) instead",
            )
        return answer

    async def HandleEndpointStream(
        self, request: pb.EndpointRequest, context: Context
    ) -> AsyncIterator[pb.EndpointChunk]:
        spec = await self._route(request, context, stream=True)
        target = await self._call(
            ENDPOINT_HOOK, context, request.context.config_id, lambda p: p, request.context.request_id
        )
        pieces = getattr(target, spec.handler)(request)
        if not hasattr(pieces, "__aiter__"):
            await context.abort(
                grpc.StatusCode.INTERNAL,
                f"route {spec.path} is streamed, so its method must be an async generator "
                "(async def with yield)",
            )
        headed = False
        try:
            async for piece in pieces:
                if isinstance(piece, pb.HttpResponse):
                    if headed:
                        raise TypeError("respond(...) may only come first, before any body")
                    headed = True
                    yield pb.EndpointChunk(head=pb.HttpResponse(status=piece.status, headers=piece.headers))
                    continue
                if not headed:
                    headed = True
                    yield pb.EndpointChunk(head=respond(media_type=spec.media_type))
                yield pb.EndpointChunk(body=piece.encode() if isinstance(piece, str) else bytes(piece))
        except Exception as exc:  # a plugin bug must reach the host as an error, not kill the server
            log.exception("route %s failed", spec.path)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"route {spec.path} failed: {type(exc).__name__}: {exc}"
            )
        if not headed:
            yield pb.EndpointChunk(head=respond(media_type=spec.media_type))
