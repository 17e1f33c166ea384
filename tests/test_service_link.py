"""The host end of HostChannel against a plugin end written here: ids, cancels, the open-call limit,
failures of the handler, and the caller's identity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest

from solstice.host import service_link
from solstice.host.service_link import MAX_OPEN_CALLS, ServiceLink
from solstice.protocol import pb, pb_grpc


class Handler:
    """Answers kv_get at once, holds events_publish until released, fails on apps_list."""

    def __init__(self) -> None:
        self.callers: list[tuple[str, tuple[str, ...]]] = []
        self.release = asyncio.Event()
        self.cancelled = 0

    async def answer(
        self, slug: str, declared: Sequence[str], call: pb.ServiceCall
    ) -> AsyncIterator[pb.ServiceReply]:
        self.callers.append((slug, tuple(declared)))
        kind = call.WhichOneof("call")
        if kind == "apps_list":
            raise RuntimeError("a bug in the platform")
        if kind == "events_publish":
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        yield pb.ServiceReply(kv_value=pb.KvValue(found=True, value=call.kv_get.key.encode()))


class PluginEnd(pb_grpc.PluginServicer):
    """Sends the scripted calls, then collects replies until told to stop."""

    def __init__(self, calls: list[pb.ServiceCall], wanted: int) -> None:
        self.calls = calls
        self.wanted = wanted
        self.enough = asyncio.Event()
        self.replies: list[pb.ServiceReply] = []
        self.hello = ""
        self.done = asyncio.Event()

    async def HostChannel(
        self, request_iterator: AsyncIterator[pb.HostMessage], context: object
    ) -> AsyncIterator[pb.ServiceCall]:
        first = await anext(request_iterator)
        self.hello = first.hello.plugin_slug

        async def read() -> None:
            async for message in request_iterator:
                self.replies.append(message.reply)
                if len(self.replies) >= self.wanted:
                    self.enough.set()

        reader = asyncio.create_task(read())
        for call in self.calls:
            yield call
        await self.done.wait()
        reader.cancel()


async def run_link(calls: list[pb.ServiceCall], handler: Handler, until: int) -> PluginEnd:
    """Serve a PluginEnd, open a link to it, wait for `until` replies, close everything."""
    end = PluginEnd(calls, until)
    server = grpc.aio.server()
    pb_grpc.add_PluginServicer_to_server(end, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    link = ServiceLink("my-plugin", channel, handler, ["kv.read"])
    link.start()
    try:
        await asyncio.wait_for(end.enough.wait(), 20)
    finally:
        end.done.set()
        await link.close()
        await channel.close()
        await server.stop(None)
    return end


def kv_get(call_id: int, key: str = "k") -> pb.ServiceCall:
    return pb.ServiceCall(id=call_id, kv_get=pb.KvGet(key=key))


def held(call_id: int) -> pb.ServiceCall:
    return pb.ServiceCall(id=call_id, events_publish=pb.Event(type="x"))


async def test_replies_carry_the_call_id_and_the_caller_is_the_links_plugin() -> None:
    handler = Handler()
    end = await run_link([kv_get(7, "a"), kv_get(8, "b")], handler, until=2)
    assert end.hello == "my-plugin"
    assert sorted((r.id, r.kv_value.value) for r in end.replies) == [(7, b"a"), (8, b"b")]
    assert handler.callers == [("my-plugin", ("kv.read",))] * 2


async def test_an_id_in_use_is_refused_and_a_cancel_stops_the_call() -> None:
    handler = Handler()
    calls = [held(1), held(1), pb.ServiceCall(id=2, cancel=1), kv_get(3)]
    end = await run_link(calls, handler, until=2)
    refused = next(r for r in end.replies if r.WhichOneof("result") == "error")
    assert (refused.id, refused.error.code) == (1, "INVALID_ARGUMENT")
    assert refused.error.message == "call id 1 is in use; give each open call its own id"
    assert any(r.id == 3 for r in end.replies)
    assert handler.cancelled == 1


async def test_calls_past_the_open_limit_are_refused() -> None:
    handler = Handler()
    calls = [held(i) for i in range(1, MAX_OPEN_CALLS + 2)] + [
        pb.ServiceCall(id=9999, apps_list=pb.ListRequest())
    ]
    end = await run_link(calls, handler, until=2)
    assert [(r.id, r.error.code) for r in end.replies] == [
        (MAX_OPEN_CALLS + 1, "RESOURCE_EXHAUSTED"),
        (9999, "RESOURCE_EXHAUSTED"),
    ]


async def test_a_handler_failure_is_an_internal_error_without_details() -> None:
    end = await run_link([pb.ServiceCall(id=5, apps_list=pb.ListRequest())], Handler(), until=1)
    assert end.replies[0].error.code == "INTERNAL"
    assert "bug" not in end.replies[0].error.message


def big_held(call_id: int, size: int) -> pb.ServiceCall:
    return pb.ServiceCall(id=call_id, events_publish=pb.Event(type="x", data_json="x" * size))


async def test_calls_past_the_open_bytes_are_refused_but_one_call_of_any_size_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service_link, "MAX_OPEN_BYTES", 10_000)
    handler = Handler()
    # The first call alone is over the limit and still taken; the second would add to it.
    calls = [big_held(1, 20_000), big_held(2, 100), pb.ServiceCall(id=3, cancel=1), big_held(4, 6_000)]
    end = await run_link(calls, handler, until=1)
    await asyncio.sleep(0.2)  # the cancel has freed the first call's bytes: the fourth is open
    refused = [(r.id, r.error.code) for r in end.replies]
    assert refused == [(2, "RESOURCE_EXHAUSTED")]
    assert "bytes of calls open; wait for answers before sending more" in end.replies[0].error.message
    assert handler.cancelled >= 1


class DeafEnd(pb_grpc.PluginServicer):
    """Sends calls whose answers are large, and never reads the replies."""

    def __init__(self) -> None:
        self.opened = 0
        self.reopened = asyncio.Event()

    async def HostChannel(
        self, request_iterator: AsyncIterator[pb.HostMessage], context: object
    ) -> AsyncIterator[pb.ServiceCall]:
        await anext(request_iterator)
        self.opened += 1
        if self.opened > 1:
            self.reopened.set()
        for call_id in range(1, 200):
            yield kv_get(call_id, "k" * 400_000)
        await asyncio.Event().wait()


async def test_a_plugin_that_stops_reading_loses_its_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_link, "WRITE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(service_link, "_REOPEN_DELAY_S", 0.1)
    end = DeafEnd()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 1 << 20)])
    pb_grpc.add_PluginServicer_to_server(end, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    link = ServiceLink("deaf", channel, Handler(), ["kv.read"])
    link.start()
    try:
        # Its unread replies fill the stream's window; the write gives up and the stream is opened anew.
        await asyncio.wait_for(end.reopened.wait(), 20)
    finally:
        await link.close()
        await channel.close()
        await server.stop(None)
