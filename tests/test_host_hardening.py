"""Hard cases for the host: process groups, cancellation, late remotes, slow stops, limits."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time

import pytest
from prometheus_client import REGISTRY

from solstice.commands import CommandError, parse_command
from solstice.host import HandshakeTimeoutError, PluginHost, PluginSpec, PluginStartError, PluginState
from solstice.host.process import _socket_base
from solstice.protocol import pb
from tests.conftest import TESTBED, child_pids, fast_settings, new_children, pid_alive, wait_for
from tests.server import free_port


def _descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        children = [c for parent in frontier for c in child_pids(parent)]
        found += children
        frontier = children
    return found


def _inflight(host: PluginHost, slug: str) -> int:
    """Calls holding the serving instance of `slug` (the count its drain waits on)."""
    instance = host._get(slug)._instance
    return instance.inflight if instance is not None else 0


def _start_failures(slug: str) -> float:
    return REGISTRY.get_sample_value("solstice_plugin_start_failures_total", {"plugin": slug}) or 0.0


async def test_wrapper_without_exec_cannot_hang_the_host_or_leave_its_child(tmp_path) -> None:
    script = tmp_path / "wrapper"
    # The shell stays the plugin's parent, and its child holds the pipes.
    script.write_text(f"#!/bin/sh\nTESTBED_MODE=no-handshake {TESTBED}\n")
    script.chmod(0o755)
    before = _descendants(os.getpid())
    began = time.monotonic()
    async with PluginHost(fast_settings(plugin_handshake_timeout=1.0)) as host:
        with pytest.raises(HandshakeTimeoutError):
            await host.load(PluginSpec(slug="w", command=f"file://{script}"))
    assert time.monotonic() - began < 10
    await wait_for(lambda: not [p for p in _descendants(os.getpid()) if p not in before], timeout=5)


async def test_crash_of_a_wrapper_is_noticed_and_its_child_killed(tmp_path) -> None:
    script = tmp_path / "wrapper"
    script.write_text(f"#!/bin/sh\n{TESTBED}\n")
    script.chmod(0o755)
    async with PluginHost(fast_settings()) as host:
        first = await host.load(PluginSpec(slug="w", command=f"file://{script}"))
        assert first.pid is not None
        grandchildren = child_pids(first.pid)
        assert len(grandchildren) == 1
        os.kill(first.pid, signal.SIGKILL)  # the shell dies; its child still holds the pipes
        await wait_for(
            lambda: host.status("w").restarts == 1 and host.status("w").state == PluginState.HEALTHY
        )
        assert not pid_alive(grandchildren[0])


async def test_cancelled_reload_still_stops_the_old_instance() -> None:
    async with PluginHost(fast_settings()) as host:
        first = await host.load(PluginSpec(slug="t", command=f"file://{TESTBED}", config={"slow_ms": 1500}))
        call = asyncio.create_task(
            host.client("t").pre_auth(pb.RequestContext(), pb.HttpRequest(path="/slow"))
        )
        await wait_for(lambda: _inflight(host, "t") == 1, what="the slow call to be in flight")
        reload = asyncio.create_task(host.reload("t"))
        await wait_for(lambda: host.status("t").pid != first.pid, timeout=15)
        reload.cancel()  # while the old instance drains its slow call
        answer = await call
        assert answer.WhichOneof("action") == "modify"
        assert first.pid is not None
        await wait_for(lambda: not pid_alive(first.pid), timeout=10)


async def test_remote_plugin_down_at_load_is_retried_until_it_answers(standalone) -> None:
    port = free_port()
    before = _start_failures("r")
    async with PluginHost(fast_settings(plugin_connect_timeout=0.3, plugin_max_start_failures=2)) as host:
        with pytest.raises(PluginStartError):
            await host.load(PluginSpec(slug="r", command=f"grpc://127.0.0.1:{port}"))
        assert host.status("r").state == PluginState.FAILED
        # Past plugin_max_start_failures, where a local plugin is given up on; a remote one is not.
        await wait_for(lambda: _start_failures("r") - before > 2, what="a third failed start")
        standalone(port=port)
        await wait_for(lambda: host.status("r").state == PluginState.HEALTHY, timeout=15)
        answer = await host.client("r").pre_auth(pb.RequestContext(), pb.HttpRequest(path="/noop"))
        assert answer.WhichOneof("action") == "proceed"


async def test_local_plugin_that_fails_to_start_recovers_once_fixed(tmp_path) -> None:
    path = tmp_path / "late"
    async with PluginHost(fast_settings(plugin_max_start_failures=50)) as host:
        with pytest.raises(PluginStartError):
            await host.load(PluginSpec(slug="late", command=f"file://{path}"))
        path.write_text(f"#!/bin/sh\nexec {TESTBED}\n")
        path.chmod(0o755)
        await wait_for(lambda: host.status("late").state == PluginState.HEALTHY, timeout=15)


async def test_unload_interrupts_a_slow_start(tmp_path) -> None:
    script = tmp_path / "mute"
    script.write_text(f"#!/bin/sh\nTESTBED_MODE=no-handshake exec {TESTBED}\n")
    script.chmod(0o755)
    before = child_pids(os.getpid())
    async with PluginHost(fast_settings(plugin_handshake_timeout=60)) as host:
        loading = asyncio.create_task(host.load(PluginSpec(slug="m", command=f"file://{script}")))
        await wait_for(lambda: bool(new_children(before)), timeout=10)
        began = time.monotonic()
        await host.unload("m")
        assert time.monotonic() - began < 5
        with pytest.raises(PluginStartError, match="stopped while starting"):
            await loading
    await wait_for(lambda: not new_children(before), timeout=5)


async def test_stopping_a_hung_plugin_takes_the_grace_period_once() -> None:
    async with PluginHost(fast_settings(plugin_stop_grace=1.0)) as host:
        status = await host.load(PluginSpec(slug="t", command=f"file://{TESTBED}"))
        assert status.pid is not None
        os.kill(status.pid, signal.SIGSTOP)
        began = time.monotonic()
        await host.unload("t")
        assert time.monotonic() - began < 1.9
        assert not pid_alive(status.pid)


def test_socket_directory_base_stays_short(monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", "/tmp/" + "x" * 80)
    assert _socket_base() == "/tmp"
    monkeypatch.setattr(tempfile, "tempdir", "/var/tmp")
    assert _socket_base() == "/var/tmp"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("grpc://host:²", "not a number from 1 to 65535"),
        ("oci://bob:s3cret@registry.example.com/p:v1", "must not carry credentials"),
        ("file:///opt/plugins/../../bin/sh", "write file:///bin/sh"),
        ("file:////etc/plugin", "write file:///etc/plugin"),
    ],
)
def test_more_refused_commands(raw: str, fragment: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(raw)
    assert fragment in str(info.value)
    assert "s3cret" not in str(info.value)


def test_socket_directories_of_dead_hosts_are_swept(tmp_path, monkeypatch) -> None:
    import subprocess

    from solstice.host import process

    monkeypatch.setattr(process, "_socket_base", lambda: str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"solstice-plugin-{dead.pid}-abcd"
    mine = tmp_path / f"solstice-plugin-{os.getpid()}-efgh"
    other = tmp_path / "solstice-plugin-notapid"
    for directory in (stale, mine, other):
        directory.mkdir()
    process._sweep_stale_socket_dirs.__wrapped__()
    assert not stale.exists()
    assert mine.exists() and other.exists()
