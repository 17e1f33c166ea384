"""A file:// path the operating system cannot use fails that one plugin, never the server."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import httpx
import pytest

from solstice.host import PluginHost, PluginSpec, PluginStartError, PluginState
from tests.conftest import TESTBED, fast_settings, wait_until
from tests.server import Server


def bad_paths(base: Path) -> dict[str, Path]:
    """A symlink loop (ELOOP), a path through a regular file (ENOTDIR), an over-long name."""
    base.mkdir(mode=0o755)
    (base / "loop").symlink_to("loop")
    regular = base / "plugin.py"
    regular.write_text("#!/bin/sh\n")
    regular.chmod(0o755)
    return {
        "loop": base / "loop",
        "through-file": regular / "x",
        "long-name": base / ("n" * 300),
    }


def good_plugin(base: Path) -> Path:
    target = base / "testbed.py"
    shutil.copy(TESTBED, target)
    target.chmod(0o755)
    return target


@pytest.mark.parametrize("case", ["loop", "through-file", "long-name"])
async def test_an_unusable_path_is_a_failed_start_naming_the_path(tmp_path: Path, case: str) -> None:
    path = bad_paths(tmp_path / "plugins")[case]
    async with PluginHost(fast_settings(plugin_max_start_failures=2)) as host:
        with pytest.raises(PluginStartError) as info:
            await host.load(PluginSpec(slug=case, command=f"file://{path}"))
        assert str(path) in str(info.value)
        status = host.status(case)
        assert status.state == PluginState.FAILED and status.last_error == str(info.value)


def wait_for_status(server: Server, slug: str, wanted: str, timeout: float = 60.0) -> dict:
    """The plugin `slug` once the API reports it `wanted`; fails with the server log after `timeout` s."""
    with server.client() as client:

        def reached() -> dict | None:
            plugin = server.json(client.get(f"/api/v1/plugins/{slug}"))
            return plugin if plugin["status"] == wanted else None

        return wait_until(reached, timeout, server.log, what=f"{slug} to be {wanted}")


def test_unusable_paths_fail_their_plugin_and_a_restart_still_gets_ready(tmp_path: Path) -> None:
    paths = bad_paths(tmp_path / "plugins")
    good = good_plugin(tmp_path / "plugins")
    data = tmp_path / "data"
    data.mkdir()
    # The allowlist makes the API stage of the policy look at every path too.
    env = {"PLUGIN_COMMAND_ALLOWLIST": f"{tmp_path}/plugins/*", "SOLSTICE_PLUGIN_MAX_START_FAILURES": "2"}
    server = Server(data, env=env).wait_ready()
    try:
        with server.client() as client:
            for slug, path in paths.items():
                body = {"name": slug, "command": f"file://{path}", "hook_type": "pre_auth"}
                created = client.post("/api/v1/plugins", json=body)
                assert created.status_code == 201, f"{created.status_code} {created.text}\n{server.log()}"
                plugin = server.json(created)
                assert plugin["status"] == "failed", plugin
                assert str(path) in plugin["last_error"], plugin
            body = {"name": "good", "command": f"file://{good}", "hook_type": "pre_auth"}
            assert server.json(client.post("/api/v1/plugins", json=body))["status"] == "healthy"
    finally:
        server.stop(signal.SIGKILL)

    again = Server(data, env=env).wait_ready()
    try:
        assert wait_for_status(again, "good", "healthy")["status"] == "healthy", again.log()
        for slug, path in paths.items():
            plugin = wait_for_status(again, slug, "failed")
            assert plugin["status"] == "failed" and str(path) in plugin["last_error"], plugin
        ready = httpx.get(f"{again.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        # The reconcile loop runs: a plugin added behind the API's back (a reload) still works.
        with again.client() as client:
            reloaded = client.post("/api/v1/plugins/good/reload")
            assert reloaded.status_code == 200, reloaded.text
    finally:
        assert again.stop() == 0


def test_an_edge_with_an_unusable_path_still_serves_the_other_plugins(tmp_path: Path) -> None:
    from tests.test_edge import Edge  # the edge process helper

    paths = bad_paths(tmp_path / "plugins")
    good = good_plugin(tmp_path / "plugins")
    entries = [(slug, path) for slug, path in paths.items()] + [("good", good)]
    config = tmp_path / "plugins.yaml"
    config.write_text(
        "plugins:\n"
        + "".join(
            f"  - slug: {slug}\n    command: file://{path}\n    hook_types: [pre_auth]\n"
            for slug, path in entries
        )
        + "llms:\n  - slug: mock\n    vendor: mock\n    plugins:\n      - plugin: good\n"
        + "apps:\n  - name: demo\n    llms: [mock]\n    keys_env: [DEMO_KEY]\n"
    )
    edge = Edge(tmp_path / "edge", None, "", "", env={"DEMO_KEY": "sk-demo-123"}, config=config).start()
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(
            f"{edge.url}/llm/mock/v1/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-demo-123"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text + edge.read_log()
        log = edge.read_log()
        for path in paths.values():
            assert str(path) in log, log
    finally:
        edge.stop()
