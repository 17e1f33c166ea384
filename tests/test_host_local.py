"""file:// plugins (Python SDK and Go go-plugin) started, called and stopped by the host."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import structlog

from solstice.host import PluginHost, PluginSpec, PluginState
from solstice.protocol import pb
from tests.conftest import EXAMPLES, TESTBED, pid_alive


def _ctx(**kw: object) -> pb.RequestContext:
    return pb.RequestContext(request_id="req-1", **kw)  # type: ignore[arg-type]


async def test_python_plugin_loads_and_modifies(host: PluginHost) -> None:
    spec = PluginSpec(
        slug="enricher",
        command=f"file://{EXAMPLES / 'header-enricher' / 'plugin.py'}",
        config={"headers": {"X-Team": "search"}},
    )
    status = await host.load(spec)
    assert status.state == PluginState.HEALTHY
    assert status.pid is not None and pid_alive(status.pid)
    assert status.info is not None and list(status.info.hooks) == [pb.HOOK_POST_AUTH]
    answer = await host.client("enricher").post_auth(
        _ctx(app=pb.App(id="42")), pb.HttpRequest(method="POST", path="/v1/chat/completions")
    )
    assert answer.WhichOneof("action") == "modify"
    headers = {h.name: h.value for h in answer.modify.set_headers}
    assert headers == {"X-Team": "search", "X-Solstice-App": "42", "X-Request-ID": "req-1"}
    assert answer.metadata_updates["enriched_by"] == "header-enricher"


async def test_go_plugin_loads_via_go_plugin_handshake(host: PluginHost, go_plugin) -> None:
    spec = PluginSpec(
        slug="guard",
        command=f"file://{go_plugin}",
        config={"blocked_words": ["Forbidden"], "max_body_bytes": 64},
    )
    status = await host.load(spec)
    assert status.state == PluginState.HEALTHY
    assert status.info is not None and status.info.name == "request-guard"
    client = host.client("guard")
    ok = await client.pre_auth(_ctx(), pb.HttpRequest(body=b'{"prompt": "hello"}'))
    assert ok.WhichOneof("action") == "proceed"
    blocked = await client.pre_auth(_ctx(), pb.HttpRequest(body=b"this is forbidden"))
    assert blocked.block.status == 403
    assert "forbidden" in json.loads(blocked.block.body)["error"]["message"]
    too_big = await client.pre_auth(_ctx(), pb.HttpRequest(body=b"x" * 65))
    assert too_big.block.status == 413
    pid = status.pid
    await host.unload("guard")
    assert pid is not None and not pid_alive(pid)


async def test_go_plugin_rejects_bad_config(host: PluginHost, go_plugin) -> None:
    from solstice.host import PluginConfigError

    with pytest.raises(PluginConfigError) as info:
        await host.load(
            PluginSpec(slug="guard", command=f"file://{go_plugin}", config={"max_body_bytes": -1})
        )
    assert str(info.value) == (
        "config of plugin guard does not match the plugin's schema at /max_body_bytes: "
        "-1 is less than the minimum of 0"
    )
    assert host.status("guard").state == PluginState.FAILED


async def test_plugin_gets_minimal_environment(host: PluginHost, monkeypatch, tmp_path) -> None:
    script = tmp_path / "envdump.py"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import os\n"
        "from solstice.sdk import Plugin, modify, serve\n"
        "class EnvDump(Plugin):\n"
        "    async def pre_auth(self, ctx, request):\n"
        "        return modify(set_headers={k: v for k, v in os.environ.items()})\n"
        "serve(EnvDump())\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("SOLSTICE_ADMIN_TOKEN", "super-secret")
    monkeypatch.setenv("PLUGIN_WANTS_THIS", "yes")
    from tests.conftest import fast_settings

    async with PluginHost(fast_settings()) as own:
        await own.load(PluginSpec(slug="env", command=f"file://{script}", env=("PLUGIN_WANTS_THIS",)))
        answer = await own.client("env").pre_auth(_ctx(), pb.HttpRequest())
    env = {h.name: h.value for h in answer.modify.set_headers}
    assert "SOLSTICE_ADMIN_TOKEN" not in env
    assert env["PLUGIN_WANTS_THIS"] == "yes"
    assert env["SOLSTICE_PLUGIN_MAGIC_COOKIE"]
    assert env["PLUGIN_PROTOCOL_VERSIONS"] == "1"
    socket_dir = env["PLUGIN_UNIX_SOCKET_DIR"]
    assert env["TMPDIR"] == socket_dir
    allowed = {
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TZ",
        "PLUGIN_WANTS_THIS",
        "SOLSTICE_PLUGIN_MAGIC_COOKIE",
        "PLUGIN_PROTOCOL_VERSIONS",
        "PLUGIN_MIN_PORT",
        "PLUGIN_MAX_PORT",
        "PLUGIN_UNIX_SOCKET_DIR",
        "TMPDIR",
        "LC_CTYPE",
        "SOLSTICE_PLUGIN_HOST_ID",
    }
    assert set(env) <= allowed, set(env) - allowed


async def test_socket_directory_is_private(host: PluginHost) -> None:
    import os
    import stat

    await host.load(PluginSpec(slug="t", command=f"file://{TESTBED}"))
    target = host.status("t").target
    assert target is not None and target.startswith("unix:")
    directory = os.path.dirname(target.removeprefix("unix:"))
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    await host.unload("t")
    assert not Path(directory).exists()


async def test_plugin_output_becomes_tagged_log_records(host: PluginHost) -> None:
    spec = PluginSpec(slug="noisy", command=f"file://{TESTBED}", config={"stderr_bytes": 4096})
    await host.load(spec)
    with structlog.testing.capture_logs() as records:
        await host.client("noisy").pre_auth(_ctx(), pb.HttpRequest(path="/stderr"))
        await host.unload("noisy")
    lines = [r for r in records if r.get("plugin") == "noisy" and r.get("stream") == "stderr"]
    assert len(lines) >= 4
    assert lines[0]["event"] == "x" * 1023
    assert lines[0]["log_level"] == logging.getLevelName(logging.INFO).lower()


async def test_unload_leaves_no_process(host: PluginHost, go_plugin) -> None:
    python = await host.load(PluginSpec(slug="py", command=f"file://{TESTBED}"))
    go = await host.load(PluginSpec(slug="go", command=f"file://{go_plugin}"))
    pids = [python.pid, go.pid]
    assert all(p is not None and pid_alive(p) for p in pids)
    await host.unload("py")
    await host.unload("go")
    assert not any(pid_alive(p) for p in pids if p is not None)
    assert host.statuses() == []


async def test_print_in_a_hook_arrives_as_a_stdout_record(host: PluginHost) -> None:
    await host.load(PluginSpec(slug="printer", command=f"file://{TESTBED}"))
    with structlog.testing.capture_logs() as records:
        answer = await host.client("printer").pre_auth(_ctx(), pb.HttpRequest(path="/print"))
        await host.unload("printer")
    assert answer.WhichOneof("action") == "proceed"
    assert {"event": "hello from print", "stream": "stdout"}.items() <= next(
        r for r in records if r.get("event") == "hello from print"
    ).items()


async def test_go_plugin_hclog_lines_are_parsed(host: PluginHost, go_plugin) -> None:
    with structlog.testing.capture_logs() as records:
        await host.load(PluginSpec(slug="go", command=f"file://{go_plugin}"))
        await host.unload("go")
    address = next(r for r in records if r.get("event") == "plugin address")
    assert address["plugin"] == "go"
    assert address["log_level"] == "debug"
    assert address["network"] == "unix"


async def test_checksum_is_verified_before_start(host: PluginHost, tmp_path) -> None:
    import hashlib

    from solstice.host import PluginStartError

    digest = hashlib.sha256(TESTBED.read_bytes()).hexdigest()
    ok = await host.load(PluginSpec(slug="c", command=f"file://{TESTBED}", checksum=f"sha256:{digest}"))
    assert ok.state == PluginState.HEALTHY
    wrong = "0" * 64
    with pytest.raises(PluginStartError) as info:
        await host.load(PluginSpec(slug="d", command=f"file://{TESTBED}", checksum=wrong))
    assert f"has sha256 {digest}, but the plugin expects {wrong}" in str(info.value)
