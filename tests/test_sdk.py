"""The Python SDK run the three ways a plugin binary can be started."""

from __future__ import annotations

import json
import signal
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from solstice.protocol import pb, pb_grpc
from tests.conftest import EXAMPLES, TESTBED


def test_run_directly_prints_one_line_and_exits_1(tmp_path) -> None:
    done = subprocess.run([str(TESTBED)], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "file:///" in lines[0] and "--listen HOST:PORT" in lines[0]


async def test_standalone_serves_health_info_and_hooks(standalone) -> None:
    server = standalone(EXAMPLES / "ip-filter" / "plugin.py")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="plugin"), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = pb_grpc.PluginStub(channel)
        info = await stub.GetInfo(pb.GetInfoRequest(), timeout=5)
        assert info.name == "ip-filter"
        assert list(info.hooks) == [pb.HOOK_PRE_AUTH]
        assert json.loads(info.config_schema_json)["type"] == "object"
        await stub.Configure(pb.ConfigureRequest(config_json='{"deny": ["203.0.113.0/24"]}'), timeout=5)
        denied = await stub.PreAuth(
            pb.PreAuthRequest(request=pb.HttpRequest(remote_addr="203.0.113.9:5555")), timeout=5
        )
        assert denied.WhichOneof("action") == "block"
        assert denied.block.status == 403
        allowed = await stub.PreAuth(
            pb.PreAuthRequest(request=pb.HttpRequest(remote_addr="198.51.100.1:5555")), timeout=5
        )
        assert allowed.WhichOneof("action") == "proceed"


async def test_standalone_rejects_bad_config_and_missing_hooks(standalone) -> None:
    server = standalone(EXAMPLES / "ip-filter" / "plugin.py")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.PluginStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.Configure(pb.ConfigureRequest(config_json='{"deny": ["not-a-cidr"]}'), timeout=5)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not-a-cidr" in (bad.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as not_json:
            await stub.Configure(pb.ConfigureRequest(config_json="[1]"), timeout=5)
        assert "must be a JSON object" in (not_json.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.PostAuth(pb.PostAuthRequest(), timeout=5)
        assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_standalone_exits_0_on_sigterm(standalone) -> None:
    server = standalone()
    assert server.stop(signal.SIGTERM) == 0


def test_listen_from_environment(tmp_path) -> None:
    proc = subprocess.Popen(
        [str(TESTBED)],
        env={"PATH": subprocess.os.environ["PATH"], "SOLSTICE_PLUGIN_LISTEN": "127.0.0.1:0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("listening on grpc://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_unusable_listen_address_is_one_clear_line() -> None:
    done = subprocess.run(
        [str(TESTBED), "--listen", "256.1.1.1:99999"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert "256.1.1.1:99999" in done.stderr
