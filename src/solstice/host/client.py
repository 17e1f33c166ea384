"""Typed calls to one plugin over one reused gRPC channel, each with a deadline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Protocol, TypeVar, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from solstice.hooks import AGENT_HOOK, ENDPOINT_HOOK, OBJECT_HOOK, TASK_HOOK
from solstice.host.errors import PluginCallError
from solstice.protocol import pb, pb_grpc
from solstice.protocol.handshake import HEALTH_SERVICE, LINK_METADATA

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


class _HealthStub(Protocol):
    Check: grpc.aio.UnaryUnaryMultiCallable[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]


_CODE_HINTS = {
    grpc.StatusCode.DEADLINE_EXCEEDED: "did not answer within {timeout_ms} ms",
    grpc.StatusCode.UNAVAILABLE: "is not reachable",
    grpc.StatusCode.UNIMPLEMENTED: "does not implement this hook",
}


class PluginClient:
    """The hook RPCs of one plugin instance, translated into PluginCallError on failure."""

    def __init__(self, channel: grpc.aio.Channel, slug: str, timeout_ms: int) -> None:
        self.slug = slug
        self.timeout = timeout_ms / 1000
        self._stub = pb_grpc.PluginStub(channel)
        # The generated HealthStub binds Check as a unary call between these two messages; its type
        # stub leaves the attribute out.
        self._health = cast(_HealthStub, health_pb2_grpc.HealthStub(channel))
        # Sent with every RPC once the instance opened its service channel (see ServiceLink).
        self._metadata: tuple[tuple[str, str], ...] | None = None

    def name_link(self, token: str) -> None:
        """Tell the plugin, with each later RPC, which service channel its calls should use."""
        self._metadata = ((LINK_METADATA, token),)

    def _error(self, hook: str, exc: grpc.aio.AioRpcError, timeout: float) -> PluginCallError:
        code = exc.code()
        hint = _CODE_HINTS.get(code, "failed").format(timeout_ms=round(timeout * 1000))
        detail = exc.details() or code.name
        return PluginCallError(
            f"plugin {self.slug} {hint} during {hook}: {detail}", slug=self.slug, hook=hook, code=code.name
        )

    async def _call(
        self,
        hook: str,
        method: grpc.aio.UnaryUnaryMultiCallable[_Request, _Response],
        request: _Request,
        timeout: float | None = None,
    ) -> _Response:
        deadline = timeout or self.timeout
        try:
            return await method(request, timeout=deadline, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise self._error(hook, exc, deadline) from None
        except asyncio.CancelledError:
            if _cancelled_from_outside():
                raise
            raise self._closed(hook) from None

    def _closed(self, hook: str) -> PluginCallError:
        # grpc.aio cancels the calls still open on a channel that is closed, as the host does when
        # it sees the plugin's process exit mid-call: a failed call, not ours to stop.
        return PluginCallError(
            f"plugin {self.slug} is not reachable during {hook}: its connection was closed",
            slug=self.slug,
            hook=hook,
            code=grpc.StatusCode.CANCELLED.name,
        )

    async def check_health(self, timeout: float) -> str | None:
        """None when the plugin reports SERVING for the go-plugin health service, else why not."""
        request = health_pb2.HealthCheckRequest(service=HEALTH_SERVICE)
        try:
            answer = await self._health.Check(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return _describe_failure(exc)
        except asyncio.CancelledError:
            if _cancelled_from_outside():
                raise
            return "its connection was closed"
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            return f"its health service reports {name}"
        return None

    async def get_info(self, timeout: float) -> pb.PluginInfo:
        """Ask the plugin who it is and which hooks it serves."""
        return await self._call("get_info", self._stub.GetInfo, pb.GetInfoRequest(), timeout)

    async def configure(self, config: Mapping[str, Any], timeout: float, config_id: str = "") -> None:
        """Send the plugin one of its configurations as JSON."""
        request = pb.ConfigureRequest(
            config_json=json.dumps(dict(config)), plugin_slug=self.slug, config_id=config_id
        )
        await self._call("configure", self._stub.Configure, request, timeout)

    async def pre_auth(
        self, ctx: pb.RequestContext, request: pb.HttpRequest, timeout: float | None = None
    ) -> pb.HookResponse:
        """Run the pre_auth hook."""
        message = pb.PreAuthRequest(context=ctx, request=request)
        return await self._call("pre_auth", self._stub.PreAuth, message, timeout)

    async def auth(
        self, ctx: pb.RequestContext, request: pb.HttpRequest, credential: str, timeout: float | None = None
    ) -> pb.AuthResponse:
        """Run the auth hook."""
        message = pb.AuthRequest(context=ctx, request=request, credential=credential)
        return await self._call("auth", self._stub.Auth, message, timeout)

    async def post_auth(
        self, ctx: pb.RequestContext, request: pb.HttpRequest, timeout: float | None = None
    ) -> pb.HookResponse:
        """Run the post_auth hook."""
        message = pb.PostAuthRequest(context=ctx, request=request)
        return await self._call("post_auth", self._stub.PostAuth, message, timeout)

    async def on_response(
        self,
        ctx: pb.RequestContext,
        request: pb.HttpRequest,
        response: pb.HttpResponse,
        phase: pb.ResponsePhase = pb.RESPONSE_PHASE_COMPLETE,
        chunk_index: int = 0,
        timeout: float | None = None,
    ) -> pb.HookResponse:
        """Run the on_response hook for a whole response, a chunk or the end of a stream."""
        message = pb.OnResponseRequest(
            context=ctx, request=request, response=response, phase=phase, chunk_index=chunk_index
        )
        return await self._call("on_response", self._stub.OnResponse, message, timeout)

    async def data_collection(
        self, records: Sequence[pb.ProxyRecord], config_id: str = "", timeout: float | None = None
    ) -> int:
        """Send a batch of proxy records; returns how many the plugin accepted."""
        message = pb.DataCollectionRequest(records=list(records), config_id=config_id)
        answer = await self._call("data_collection", self._stub.DataCollection, message, timeout)
        return answer.accepted

    async def handle_endpoint(
        self, request: pb.EndpointRequest, timeout: float | None = None
    ) -> pb.HttpResponse:
        """Serve one request to a route the plugin declared, answered whole."""
        return await self._call(ENDPOINT_HOOK, self._stub.HandleEndpoint, request, timeout)

    async def run_task(self, request: pb.TaskRequest, timeout: float) -> pb.TaskResult:
        """Run one due task of a schedule, within `timeout` seconds."""
        return await self._call(TASK_HOOK, self._stub.RunTask, request, timeout)

    async def handle_object_hook(
        self, request: pb.ObjectHookRequest, timeout: float
    ) -> pb.ObjectHookResponse:
        """Tell the plugin of one change to an object; before_* answers decide it."""
        return await self._call(OBJECT_HOOK, self._stub.HandleObjectHook, request, timeout)

    def handle_endpoint_stream(
        self, request: pb.EndpointRequest, timeout: float | None = None
    ) -> AsyncGenerator[pb.EndpointChunk, None]:
        """Serve one request to a streamed route: the head, then the body's pieces as they come.

        `timeout` bounds the whole stream; closing the iterator early cancels the plugin's side.
        """
        return self._stream(ENDPOINT_HOOK, self._stub.HandleEndpointStream, request, timeout)

    def handle_agent(self, request: pb.AgentRequest, timeout: float) -> AsyncGenerator[pb.AgentChunk, None]:
        """Send one chat turn to an agent: its chunks as they come, within `timeout` in all."""
        return self._stream(AGENT_HOOK, self._stub.HandleAgentMessage, request, timeout)

    async def _stream(
        self,
        hook: str,
        method: grpc.aio.UnaryStreamMultiCallable[_Request, _Response],
        request: _Request,
        timeout: float | None,
    ) -> AsyncGenerator[_Response, None]:
        deadline = timeout or self.timeout
        call = method(request, timeout=deadline, metadata=self._metadata)
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as exc:
            raise self._error(hook, exc, deadline) from None
        except asyncio.CancelledError:
            if _cancelled_from_outside():
                raise
            raise self._closed(hook) from None
        finally:
            call.cancel()


def _cancelled_from_outside() -> bool:
    """True when the running task itself is being cancelled (not just one gRPC call under it)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _describe_failure(exc: grpc.aio.AioRpcError) -> str:
    """A short reason for a failed call, naming connection refusal and DNS failure plainly."""
    details = exc.details() or exc.code().name
    lowered = details.lower()
    if "connection refused" in lowered:
        return "connection refused"
    if "dns resolution failed" in lowered or "name or service not known" in lowered:
        return "the host name does not resolve"
    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "no answer before the deadline"
    return details
