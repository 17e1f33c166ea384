"""Start failures give one actionable sentence, and the plugin is left in state failed."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from solstice.host import (
    HandshakeTimeoutError,
    PluginExitedError,
    PluginHost,
    PluginNotFoundError,
    PluginPermissionError,
    PluginSpec,
    PluginStartError,
    PluginState,
    PluginUnreachableError,
    ProtocolMismatchError,
)
from tests.conftest import TESTBED, child_pids, fast_settings, new_children


def _wrapper(tmp_path, mode: str) -> str:
    """An executable that runs the testbed in `mode` (modes come from the environment)."""
    script = tmp_path / f"testbed-{mode}"
    script.write_text(f"#!/bin/sh\nTESTBED_MODE={mode} exec {TESTBED}\n")
    script.chmod(0o755)
    return f"file://{script}"


async def test_missing_file(host: PluginHost) -> None:
    with pytest.raises(PluginNotFoundError) as info:
        await host.load(PluginSpec(slug="p", command="file:///nonexistent/my-plugin"))
    assert str(info.value) == (
        "plugin executable /nonexistent/my-plugin does not exist; "
        "check the absolute path in the file:// command"
    )
    status = host.status("p")
    assert status.state == PluginState.FAILED
    assert status.last_error == str(info.value)


async def test_not_executable(host: PluginHost, tmp_path) -> None:
    path = tmp_path / "my-plugin"
    path.write_bytes(TESTBED.read_bytes())
    path.chmod(0o644)
    with pytest.raises(PluginPermissionError) as info:
        await host.load(PluginSpec(slug="p", command=f"file://{path}"))
    assert str(info.value).startswith("Permission denied:")
    assert f"run chmod +x {path}" in str(info.value)


async def test_directory_is_not_a_plugin(host: PluginHost, tmp_path) -> None:
    with pytest.raises(PluginNotFoundError, match="is not a regular file"):
        await host.load(PluginSpec(slug="p", command=f"file://{tmp_path}"))


async def test_relative_path_is_refused(host: PluginHost) -> None:
    with pytest.raises(PluginStartError, match="file:///usr/local/bin/my-plugin"):
        await host.load(PluginSpec(slug="p", command="file://./my-plugin"))


async def test_exits_before_handshake_reports_code_and_stderr(host: PluginHost, tmp_path) -> None:
    with pytest.raises(PluginExitedError) as info:
        await host.load(PluginSpec(slug="p", command=_wrapper(tmp_path, "exit")))
    message = str(info.value)
    assert "exited with code 3 before the handshake" in message
    assert "testbed: configured to exit before the handshake" in message


async def test_handshake_timeout_kills_the_process(tmp_path) -> None:
    before = child_pids(os.getpid())
    async with PluginHost(fast_settings(plugin_handshake_timeout=1.0)) as host:
        with pytest.raises(HandshakeTimeoutError) as info:
            await host.load(PluginSpec(slug="p", command=_wrapper(tmp_path, "no-handshake")))
    assert "printed no handshake line within 1s" in str(info.value)
    assert new_children(before) == []


async def test_wrong_protocol_version(host: PluginHost, tmp_path) -> None:
    with pytest.raises(ProtocolMismatchError) as info:
        await host.load(PluginSpec(slug="p", command=_wrapper(tmp_path, "bad-version")))
    assert "protocol version 99" in str(info.value)
    assert "accepts 1" in str(info.value)


async def test_garbage_first_line(host: PluginHost, tmp_path) -> None:
    script = tmp_path / "chatty"
    script.write_text("#!/bin/sh\necho 'starting up...'\nsleep 30\n")
    script.chmod(0o755)
    with pytest.raises(ProtocolMismatchError, match=r"unrecognized handshake line 'starting up\.\.\.'"):
        await host.load(PluginSpec(slug="p", command=f"file://{script}"))


async def test_grpc_connection_refused_names_the_address() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with PluginHost(fast_settings(plugin_connect_timeout=0.5)) as host:
        with pytest.raises(PluginUnreachableError) as info:
            await host.load(PluginSpec(slug="remote", command=f"grpc://127.0.0.1:{port}"))
    message = str(info.value)
    assert f"grpc://127.0.0.1:{port}" in message
    assert "connection refused" in message
    assert "is the plugin server running" in message


async def test_unreachable_oci_registry_is_a_clear_start_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = fast_settings(data_dir=tmp_path, oci_retries=0)
    async with PluginHost(settings) as host:
        with pytest.raises(PluginStartError) as info:
            await host.load(PluginSpec(slug="p", command=f"oci://127.0.0.1:{port}/plugins/p:v1"))
    message = str(info.value)
    assert f"oci://127.0.0.1:{port}/plugins/p:v1 could not be pulled" in message
    assert "unreachable" in message
    assert (tmp_path / "oci-cache" / "plugins").is_dir()


DIES_IN_CONFIGURE = """#!/usr/bin/env python3
import sys

from solstice.sdk import Plugin, serve


class Dies(Plugin):
    name = "dies"

    async def pre_auth(self, ctx, request):
        raise NotImplementedError

    def configure(self, config):
        sys.exit(7)


if __name__ == "__main__":
    serve(Dies())
"""


async def test_a_plugin_that_dies_while_configured_says_so(host: PluginHost, tmp_path: Path) -> None:
    path = tmp_path / "dies.py"
    path.write_text(DIES_IN_CONFIGURE)
    path.chmod(0o755)
    with pytest.raises(PluginExitedError) as info:
        await host.load(PluginSpec(slug="p", command=f"file://{path}"))
    assert str(info.value).startswith(f"plugin {path} exited with code 7 during configure; last output: ")
    # Its dying words reach the host: the SDK hands captured output to stderr as it goes down.
    assert str(info.value).endswith("SystemExit: 7")
