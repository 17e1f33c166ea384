"""What a plugin starts (even in a new session) does not outlive a host killed with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from solstice.host import PluginHost, PluginSpec, PluginState
from tests.conftest import TESTBED, fast_settings, pid_alive, wait_for, wait_until
from tests.server import Server

# Each grandchild writes its own pid once it runs (after setsid, for the second one).
GRANDCHILD = (
    "import os, sys, time\n{setsid}open(sys.argv[1], 'a').write(f'{{os.getpid()}}\\n')\ntime.sleep(600)\n"
)


def spawning_plugin(base: Path) -> tuple[Path, Path]:
    """A plugin that starts two grandchildren (one in a new session), then serves."""
    base.mkdir(parents=True, exist_ok=True)
    pids = base / "grandchildren"
    stay = base / "stay.py"
    stay.write_text(GRANDCHILD.format(setsid=""))
    leave = base / "leave.py"
    leave.write_text(GRANDCHILD.format(setsid="os.setsid()\n"))
    script = base / "spawner"
    script.write_text(
        "#!/bin/sh\n"
        f"{sys.executable} {stay} {pids} </dev/null >/dev/null 2>&1 &\n"
        f"{sys.executable} {leave} {pids} </dev/null >/dev/null 2>&1 &\n"
        f"exec {TESTBED}\n"
    )
    script.chmod(0o755)
    return script, pids


def read_pids(path: Path, count: int, timeout: float = 30.0) -> list[int]:
    """The pids of the first `count` grandchildren, once they have written them to `path`."""

    def written() -> list[int]:
        pids = [int(line) for line in path.read_text().split()] if path.exists() else []
        return pids[:count] if len(pids) >= count else []

    return wait_until(written, timeout, what="the start of the plugin's grandchildren")


def kill_leftovers(pids_file: Path) -> None:
    # The grandchildren are ours (this test started their plugin): never leave one behind.
    if pids_file.exists():
        for pid in (int(line) for line in pids_file.read_text().split()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "no-cgroup"])
def test_grandchildren_of_a_killed_server_are_swept_by_the_next(tmp_path: Path, cgroups: bool) -> None:
    script, pids_file = spawning_plugin(tmp_path / "plugin")
    data = tmp_path / "data"
    data.mkdir()
    env = {"SOLSTICE_PLUGIN_CGROUPS": str(cgroups).lower()}
    try:
        server = Server(data, env=env).wait_ready()
        try:
            with server.client() as client:
                body = {"name": "spawner", "command": f"file://{script}", "hook_type": "pre_auth"}
                created = client.post("/api/v1/plugins", json=body)
                assert created.status_code == 201 and created.json()["status"] == "healthy", created.text
            grandchildren = read_pids(pids_file, 2)
        finally:
            server.stop(signal.SIGKILL)
        # The plugin dies with its host (parent-death signal); what it started does not, by itself.
        assert all(pid_alive(p) for p in grandchildren), "nothing to sweep: the test proves nothing"

        again = Server(data, env=env).wait_ready()
        try:
            wait_until(lambda: not any(pid_alive(p) for p in grandchildren), 30, again.log, what="the sweep")
            if not cgroups:
                assert "SOLSTICE_PLUGIN_CGROUPS=false" in again.log()
        finally:
            again.stop()
    finally:
        kill_leftovers(pids_file)


async def test_a_stopped_plugin_takes_a_grandchild_in_a_new_session_with_it(tmp_path: Path) -> None:
    script, pids_file = spawning_plugin(tmp_path / "plugin")
    try:
        async with PluginHost(fast_settings()) as host:
            status = await host.load(PluginSpec(slug="spawner", command=f"file://{script}"))
            assert status.state == PluginState.HEALTHY
            grandchildren = read_pids(pids_file, 2)
            await host.unload("spawner")
        await wait_for(lambda: not any(pid_alive(p) for p in grandchildren), timeout=30)
    finally:
        kill_leftovers(pids_file)
