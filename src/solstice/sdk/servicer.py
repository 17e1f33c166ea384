"""Adapts a Plugin instance to the generated gRPC service."""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

import grpc

from solstice.protocol import pb, pb_grpc
from solstice.protocol.handshake import NOT_CONFIGURED
from solstice.sdk.plugin import HOOK_METHODS, Plugin

log = logging.getLogger("solstice.sdk")


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class PluginServicer(pb_grpc.PluginServicer):
    """Serves one Plugin over solstice.plugin.v1."""

    def __init__(self, plugin: Plugin) -> None:
        self._plugin = plugin
        self._hooks = set(type(plugin).implemented_hooks())
        self._configured = False

    async def GetInfo(self, request: pb.GetInfoRequest, context: Any) -> pb.PluginInfo:
        cls = type(self._plugin)
        return pb.PluginInfo(
            name=cls.name or cls.__name__,
            version=cls.version,
            description=cls.description,
            hooks=[HOOK_METHODS[name] for name in cls.implemented_hooks()],
            config_schema_json=json.dumps(cls.config_schema) if cls.config_schema else "",
            wants_stream_chunks=cls.wants_stream_chunks,
        )

    async def Configure(self, request: pb.ConfigureRequest, context: Any) -> pb.ConfigureResponse:
        try:
            config = json.loads(request.config_json) if request.config_json else {}
        except json.JSONDecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"config is not valid JSON: {exc}")
        if not isinstance(config, dict):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"config must be a JSON object, got {type(config).__name__}",
            )
        try:
            await _resolve(self._plugin.configure(config))
        except (ValueError, TypeError, KeyError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid config: {exc}")
        self._configured = True
        return pb.ConfigureResponse()

    async def _call(self, hook: str, context: Any, *args: Any) -> Any:
        if hook not in self._hooks:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED, f"plugin {type(self._plugin).__name__} has no {hook} hook"
            )
        if not self._configured:
            await context.abort(
                grpc.StatusCode[NOT_CONFIGURED], "plugin is not configured; the host must call Configure"
            )
        try:
            return await _resolve(getattr(self._plugin, hook)(*args))
        except Exception as exc:  # a plugin bug must reach the host as an error, not kill the server
            log.exception("%s hook failed", hook)
            await context.abort(grpc.StatusCode.INTERNAL, f"{hook} failed: {type(exc).__name__}: {exc}")

    async def PreAuth(self, request: pb.PreAuthRequest, context: Any) -> pb.HookResponse:
        return await self._call("pre_auth", context, request.context, request.request)

    async def Auth(self, request: pb.AuthRequest, context: Any) -> pb.AuthResponse:
        return await self._call("auth", context, request.context, request.request, request.credential)

    async def PostAuth(self, request: pb.PostAuthRequest, context: Any) -> pb.HookResponse:
        return await self._call("post_auth", context, request.context, request.request)

    async def OnResponse(self, request: pb.OnResponseRequest, context: Any) -> pb.HookResponse:
        return await self._call(
            "on_response",
            context,
            request.context,
            request.request,
            request.response,
            request.phase,
            request.chunk_index,
        )

    async def DataCollection(
        self, request: pb.DataCollectionRequest, context: Any
    ) -> pb.DataCollectionResponse:
        accepted = await self._call("data_collection", context, list(request.records))
        return pb.DataCollectionResponse(accepted=int(accepted or 0))
