"""The host end of a plugin's HostChannel: reads the plugin's calls to the platform, answers each.

The host opens the stream to the plugin (over the connection it already holds), so a remote
grpc:// plugin needs no route back to the host, and every call is known to come from the plugin
this instance runs: the slug the link was opened for, never one the plugin names.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

import grpc
import structlog

from solstice.protocol import pb, pb_grpc

log = structlog.get_logger("solstice.host")

_Stream = grpc.aio.StreamStreamCall[pb.HostMessage, pb.ServiceCall]

# Calls one plugin may have unanswered at once, and the bytes they may hold together; more are
# refused, not queued without bound (one call of any size is taken: it was already read).
MAX_OPEN_CALLS = 256
MAX_OPEN_BYTES = 64 << 20
# A reply the plugin does not read for this long (its window is full) ends the stream: a plugin
# that stops reading cannot pin the answers of its open calls in memory.
WRITE_TIMEOUT_S = 30.0
# A link that broke (a grpc:// plugin restarting) is opened again after this many seconds.
_REOPEN_DELAY_S = 1.0


class ServiceHandler(Protocol):
    """What answers plugins' calls: the service layer of the runtime (control plane or edge)."""

    def answer(
        self, slug: str, declared: Sequence[str], call: pb.ServiceCall
    ) -> AsyncGenerator[pb.ServiceReply, None]:
        """The replies to one call from plugin `slug`, which declared the scopes `declared`."""
        ...


def refusal(code: str, message: str) -> pb.ServiceReply:
    """A reply that refuses or fails a call."""
    return pb.ServiceReply(error=pb.ServiceError(code=code, message=message))


class ServiceLink:
    """One instance's HostChannel stream, reopened while the instance lives."""

    def __init__(
        self, slug: str, channel: grpc.aio.Channel, handler: ServiceHandler, declared: Sequence[str]
    ) -> None:
        self.slug = slug
        self._stub = pb_grpc.PluginStub(channel)
        self._handler = handler
        self._declared = tuple(declared)
        # Names this link in the hello and in the metadata of the host's RPCs (LINK_METADATA); the
        # same across reopenings, so calls in flight at a plugin's restart find the new stream.
        self.token = secrets.token_urlsafe(18)
        self._task: asyncio.Task[None] | None = None
        # The calls being answered, by id, and the bytes they hold.
        self._calls: dict[int, asyncio.Task[None]] = {}
        self._open_bytes = 0
        self._write_lock = asyncio.Lock()
        # Set once the plugin got the hello of the first stream.
        self.opened = asyncio.Event()

    def start(self) -> None:
        """Open the stream in the background."""
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """End the stream and every call still being answered."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._serve()
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    log.warning(
                        "plugin declares scopes but serves no HostChannel; its calls cannot reach Solstice",
                        plugin=self.slug,
                    )
                    return
                log.info("service channel closed; reopening", plugin=self.slug, code=exc.code().name)
            await asyncio.sleep(_REOPEN_DELAY_S)

    async def _serve(self) -> None:
        stream = self._stub.HostChannel()
        try:
            await stream.write(pb.HostMessage(hello=pb.HostHello(plugin_slug=self.slug, link=self.token)))
            self.opened.set()
            while (call := await self._read(stream)) is not grpc.aio.EOF:
                assert isinstance(call, pb.ServiceCall)
                problem = self._dispatch(stream, call)
                if problem is not None:
                    # Sent before the next message is read: a plugin that floods the channel is
                    # slowed down by its own refusals instead of piling up work here.
                    await self._send(stream, call.id, problem)
        finally:
            for task in self._calls.values():
                task.cancel()
            self._calls.clear()
            self._open_bytes = 0
            stream.cancel()

    @staticmethod
    async def _read(stream: _Stream) -> object:
        """The plugin's next message; EOF also when a write that gave up cancelled the stream."""
        try:
            return await stream.read()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling() > 0:
                raise  # the link itself is being closed
            return grpc.aio.EOF

    def _dispatch(self, stream: _Stream, call: pb.ServiceCall) -> pb.ServiceReply | None:
        """Start answering `call`; the refusal to send instead, if it cannot be taken."""
        if call.WhichOneof("call") == "cancel":
            if (running := self._calls.get(call.cancel)) is not None:
                running.cancel()  # _forget, as it ends, releases its id and its bytes
            return None
        if call.id in self._calls:
            return refusal("INVALID_ARGUMENT", f"call id {call.id} is in use; give each open call its own id")
        if len(self._calls) >= MAX_OPEN_CALLS:
            return refusal(
                "RESOURCE_EXHAUSTED",
                f"plugin {self.slug} has {MAX_OPEN_CALLS} calls open; wait for answers before sending more",
            )
        size = call.ByteSize()
        if self._calls and self._open_bytes + size > MAX_OPEN_BYTES:
            return refusal(
                "RESOURCE_EXHAUSTED",
                f"plugin {self.slug} has {self._open_bytes} bytes of calls open; "
                "wait for answers before sending more",
            )
        task = asyncio.create_task(self._answer(stream, call))
        self._calls[call.id] = task
        self._open_bytes += size
        task.add_done_callback(lambda _: self._forget(call.id, task, size))
        return None

    def _forget(self, call_id: int, task: asyncio.Task[None], size: int) -> None:
        if self._calls.get(call_id) is task:
            del self._calls[call_id]
            self._open_bytes -= size

    async def _answer(self, stream: _Stream, call: pb.ServiceCall) -> None:
        try:
            async with contextlib.aclosing(self._handler.answer(self.slug, self._declared, call)) as replies:
                async for reply in replies:
                    await self._send(stream, call.id, reply)
        except asyncio.CancelledError:
            raise
        except Exception:  # the platform's failure, reported to the plugin, never ending the link
            log.exception("service call failed", plugin=self.slug, call=call.WhichOneof("call"))
            reply = refusal("INTERNAL", "Solstice failed to answer this call; the server log has the details")
            await self._send(stream, call.id, reply)

    async def _send(self, stream: _Stream, call_id: int, reply: pb.ServiceReply) -> None:
        reply.id = call_id
        async with self._write_lock:  # one write at a time on a gRPC stream
            try:
                await asyncio.wait_for(stream.write(pb.HostMessage(reply=reply)), WRITE_TIMEOUT_S)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass  # the stream ended: _serve sees it and reopens
            except TimeoutError:
                log.warning(
                    "plugin stopped reading its service channel; closing it",
                    plugin=self.slug,
                    timeout_s=WRITE_TIMEOUT_S,
                )
                stream.cancel()
