"""A call whose channel closes under it is a failed call; cancelling the caller still cancels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from solstice.host.client import PluginClient
from solstice.host.errors import PluginCallError
from solstice.protocol import pb, pb_grpc


class _Stalling(pb_grpc.PluginServicer):
    """Answers pre_auth only after a minute, so a test can act while the call is open."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def PreAuth(self, request: pb.PreAuthRequest, context: grpc.aio.ServicerContext) -> pb.HookResponse:
        self.entered.set()
        await asyncio.sleep(60)
        return pb.HookResponse()


class _StallingHealth(health_pb2_grpc.HealthServicer):
    def __init__(self, entered: asyncio.Event) -> None:
        self.entered = entered

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        self.entered.set()
        await asyncio.sleep(60)
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
async def stalling() -> AsyncIterator[tuple[_Stalling, str]]:
    servicer = _Stalling()
    server = grpc.aio.server()
    pb_grpc.add_PluginServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(_StallingHealth(servicer.entered), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


async def test_a_channel_closed_mid_call_fails_the_call(stalling: tuple[_Stalling, str]) -> None:
    # The host closes a plugin's channel when it sees the process exit; the call open on it
    # must fail like any other plugin failure, not cancel the request that made it.
    servicer, target = stalling
    channel = grpc.aio.insecure_channel(target)
    client = PluginClient(channel, "guard", timeout_ms=30_000)
    call = asyncio.create_task(client.pre_auth(pb.RequestContext(), pb.HttpRequest(path="/")))
    await asyncio.wait_for(servicer.entered.wait(), 10)
    await channel.close()
    with pytest.raises(PluginCallError) as info:
        await call
    assert info.value.code == "CANCELLED"
    assert str(info.value) == "plugin guard is not reachable during pre_auth: its connection was closed"


async def test_cancelling_the_caller_still_cancels(stalling: tuple[_Stalling, str]) -> None:
    servicer, target = stalling
    channel = grpc.aio.insecure_channel(target)
    try:
        client = PluginClient(channel, "guard", timeout_ms=30_000)
        call = asyncio.create_task(client.pre_auth(pb.RequestContext(), pb.HttpRequest(path="/")))
        await asyncio.wait_for(servicer.entered.wait(), 10)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        await channel.close()


async def test_a_health_check_on_a_closed_channel_names_it(stalling: tuple[_Stalling, str]) -> None:
    servicer, target = stalling
    channel = grpc.aio.insecure_channel(target)
    client = PluginClient(channel, "guard", timeout_ms=30_000)
    check = asyncio.create_task(client.check_health(30))
    await asyncio.wait_for(servicer.entered.wait(), 10)
    await channel.close()
    assert await check == "its connection was closed"
