"""Supervision with real processes: crashes, hangs, noisy output, reloads, remote reconnects."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from solstice.host import PluginCallError, PluginConfigError, PluginHost, PluginSpec, PluginState
from solstice.protocol import pb
from tests.conftest import EXAMPLES, TESTBED, fast_settings, pid_alive, wait_for


async def _pid_of_answer(host: PluginHost, slug: str) -> int:
    answer = await host.client(slug).pre_auth(pb.RequestContext(), pb.HttpRequest(path="/pid"))
    return int({h.name: h.value for h in answer.modify.set_headers}["X-Testbed-Pid"])


async def test_killed_python_plugin_is_restarted_and_serves(host: PluginHost) -> None:
    first = await host.load(PluginSpec(slug="t", command=f"file://{TESTBED}"))
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    await wait_for(lambda: host.status("t").restarts == 1 and host.status("t").state == PluginState.HEALTHY)
    second = host.status("t")
    assert second.pid != first.pid
    assert await _pid_of_answer(host, "t") == second.pid
    assert not pid_alive(first.pid)


async def test_killed_go_plugin_is_restarted(host: PluginHost, go_plugin) -> None:
    first = await host.load(PluginSpec(slug="go", command=f"file://{go_plugin}"))
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    await wait_for(lambda: host.status("go").restarts == 1 and host.status("go").state == PluginState.HEALTHY)
    answer = await host.client("go").pre_auth(pb.RequestContext(), pb.HttpRequest(body=b"hi"))
    assert answer.WhichOneof("action") == "proceed"


async def test_hung_plugin_is_restarted_after_failed_health_checks(host: PluginHost) -> None:
    first = await host.load(PluginSpec(slug="t", command=f"file://{TESTBED}"))
    assert first.pid is not None
    os.kill(first.pid, signal.SIGSTOP)
    try:
        await wait_for(lambda: host.status("t").state == PluginState.UNHEALTHY, timeout=10)
        assert "health check failed" in (host.status("t").last_error or "")
        await wait_for(
            lambda: host.status("t").restarts == 1 and host.status("t").state == PluginState.HEALTHY,
            timeout=20,
        )
    finally:
        if pid_alive(first.pid):
            os.kill(first.pid, signal.SIGKILL)
    assert not pid_alive(first.pid)


async def test_plugin_writing_a_mebibyte_to_stderr_keeps_answering(host: PluginHost) -> None:
    await host.load(PluginSpec(slug="noisy", command=f"file://{TESTBED}", config={"stderr_bytes": 1 << 20}))
    client = host.client("noisy")
    for _ in range(3):
        answer = await client.pre_auth(pb.RequestContext(), pb.HttpRequest(path="/stderr"))
        assert answer.WhichOneof("action") == "proceed"
    answer = await client.pre_auth(pb.RequestContext(), pb.HttpRequest(path="/noop"))
    assert answer.WhichOneof("action") == "proceed"
    assert host.status("noisy").state == PluginState.HEALTHY


async def test_reload_under_steady_calls_loses_none(host: PluginHost) -> None:
    await host.load(PluginSpec(slug="t", command=f"file://{TESTBED}", config={"slow_ms": 20}))
    client = host.client("t")
    stop = asyncio.Event()
    served: list[int] = []
    errors: list[Exception] = []

    async def caller() -> None:
        while not stop.is_set():
            try:
                answer = await client.pre_auth(pb.RequestContext(), pb.HttpRequest(path="/slow"))
                served.append(int(answer.modify.set_headers[0].value))
            except Exception as exc:
                errors.append(exc)

    workers = [asyncio.create_task(caller()) for _ in range(8)]
    await asyncio.sleep(0.3)
    old_pids = {host.status("t").pid}
    for _ in range(3):
        await host.reload("t")
        old_pids.add(host.status("t").pid)
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*workers)
    assert errors == []
    assert len(set(served)) == 4, "calls were served by the first instance and each of three reloads"
    current = host.status("t").pid
    assert all(not pid_alive(pid) for pid in old_pids if pid != current and pid is not None)


async def test_failed_reload_keeps_the_old_instance(host: PluginHost) -> None:
    spec = PluginSpec(slug="t", command=f"file://{TESTBED}")
    before = await host.load(spec)
    with pytest.raises(PluginConfigError, match="config asked to be rejected: nope"):
        await host.reload("t", PluginSpec(slug="t", command=spec.command, config={"reject": "nope"}))
    after = host.status("t")
    assert after.pid == before.pid
    assert after.state == PluginState.HEALTHY
    assert await _pid_of_answer(host, "t") == before.pid


async def test_repeated_start_failures_end_in_failed(tmp_path) -> None:
    script = tmp_path / "flaky"
    script.write_text(f"#!/bin/sh\nexec {TESTBED}\n")
    script.chmod(0o755)
    settings = fast_settings(plugin_max_start_failures=3)
    async with PluginHost(settings) as host:
        first = await host.load(PluginSpec(slug="f", command=f"file://{script}"))
        script.write_text("#!/bin/sh\necho 'broken build' >&2\nexit 7\n")
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        await wait_for(lambda: host.status("f").state == PluginState.FAILED, timeout=15)
        status = host.status("f")
        assert "gave up after 3 failed starts" in (status.last_error or "")
        assert "exited with code 7" in (status.last_error or "")
        assert "broken build" in (status.last_error or "")
        with pytest.raises(PluginCallError, match="plugin f is failed"):
            await host.client("f").pre_auth(pb.RequestContext(), pb.HttpRequest())
        # Fixing the executable and reloading brings it back.
        script.write_text(f"#!/bin/sh\nexec {TESTBED}\n")
        await host.reload("f")
        assert host.status("f").state == PluginState.HEALTHY


async def test_remote_plugin_reconnects_and_is_configured_again(standalone) -> None:
    script = EXAMPLES / "ip-filter" / "plugin.py"
    server = standalone(script)
    port = server.port
    spec = PluginSpec(slug="ipf", command=server.command, config={"deny": ["203.0.113.0/24"]})
    request = pb.HttpRequest(remote_addr="203.0.113.5:1000")
    async with PluginHost(fast_settings()) as host:
        status = await host.load(spec)
        assert status.state == PluginState.HEALTHY and status.pid is None
        assert (await host.client("ipf").pre_auth(pb.RequestContext(), request)).block.status == 403
        server.stop(signal.SIGKILL)
        await wait_for(lambda: host.status("ipf").state == PluginState.UNHEALTHY)
        with pytest.raises(PluginCallError) as info:
            await host.client("ipf").pre_auth(pb.RequestContext(), request)
        assert info.value.code == "UNAVAILABLE"
        standalone(script, port=port)
        await wait_for(lambda: host.status("ipf").state == PluginState.HEALTHY, timeout=15)
        # The new server process only knows the deny list if the host configured it again.
        assert (await host.client("ipf").pre_auth(pb.RequestContext(), request)).block.status == 403


async def test_hook_deadline_is_enforced(tmp_path) -> None:
    spec = PluginSpec(slug="t", command=f"file://{TESTBED}", config={"slow_ms": 500}, timeout_ms=100)
    async with PluginHost(fast_settings()) as host:
        await host.load(spec)
        with pytest.raises(PluginCallError) as info:
            await host.client("t").pre_auth(pb.RequestContext(), pb.HttpRequest(path="/slow"))
    assert info.value.code == "DEADLINE_EXCEEDED"
    assert "did not answer within 100 ms during pre_auth" in str(info.value)


async def test_remote_plugin_restarted_between_health_checks_is_configured_on_use(standalone) -> None:
    script = EXAMPLES / "ip-filter" / "plugin.py"
    server = standalone(script)
    spec = PluginSpec(slug="ipf", command=server.command, config={"deny": ["203.0.113.0/24"]})
    request = pb.HttpRequest(remote_addr="203.0.113.5:1000")
    async with PluginHost(fast_settings(plugin_health_interval=3600)) as host:
        await host.load(spec)
        server.stop(signal.SIGKILL)
        standalone(script, port=server.port)
        # The host never saw the restart; the new process answers FAILED_PRECONDITION and is configured.
        answer = await host.client("ipf").pre_auth(pb.RequestContext(), request)
        assert answer.block.status == 403
        assert host.status("ipf").state == PluginState.HEALTHY


async def test_loading_a_loaded_slug_replaces_it_and_clients_keep_working(host: PluginHost) -> None:
    first = await host.load(PluginSpec(slug="t", command=f"file://{TESTBED}"))
    client = host.client("t")
    second = await host.load(PluginSpec(slug="t", command=f"file://{TESTBED}", config={"slow_ms": 1}))
    assert second.pid != first.pid
    assert first.pid is not None and not pid_alive(first.pid)
    assert await _pid_of_answer(host, "t") == second.pid
    answer = await client.pre_auth(pb.RequestContext(), pb.HttpRequest(path="/pid"))
    assert answer.modify.set_headers[0].value == str(second.pid)


async def test_concurrent_calls_to_a_restarted_remote_plugin_configure_it_once(standalone) -> None:
    script = EXAMPLES / "ip-filter" / "plugin.py"
    server = standalone(script)
    spec = PluginSpec(slug="ipf", command=server.command, config={"deny": ["203.0.113.0/24"]})
    request = pb.HttpRequest(remote_addr="203.0.113.5:1000")
    async with PluginHost(fast_settings(plugin_health_interval=3600)) as host:
        await host.load(spec)
        server.stop(signal.SIGKILL)
        standalone(script, port=server.port)
        client = host.client("ipf")
        answers = await asyncio.gather(*(client.pre_auth(pb.RequestContext(), request) for _ in range(16)))
        assert {a.block.status for a in answers} == {403}
        instance = host._plugins["ipf"]._instance
        assert instance is not None and instance.generations.get("", 0) == 1
