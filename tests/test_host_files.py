"""The file checked is the file that runs, and nobody else can replace it on the way."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path

import pytest

from solstice.host import PluginError, PluginHost, PluginSpec, PluginStartError, PluginState
from tests.conftest import EXAMPLES, TESTBED, fast_settings

NOBODY = 65534


def plugin_at(path: Path, source: Path = TESTBED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, path)
    path.chmod(0o755)
    return path


async def test_a_checksum_pin_runs_only_the_file_it_hashed_while_files_are_renamed_over_it(
    tmp_path: Path,
) -> None:
    good = TESTBED.read_bytes()
    marker = tmp_path / "evil-ran"
    evil = f"#!/bin/sh\ntouch {marker}\nexec {TESTBED}\n".encode()
    target = tmp_path / "plugins" / "guard"
    plugin_at(target)
    stop = threading.Event()

    def swap() -> None:
        # Renames a good and an evil file over the plugin path, as fast as it can.
        while not stop.is_set():
            for name, content in (("good.tmp", good), ("evil.tmp", evil)):
                staged = tmp_path / "plugins" / name
                staged.write_bytes(content)
                staged.chmod(0o755)
                os.replace(staged, target)

    checksum = hashlib.sha256(good).hexdigest()
    started = 0
    async with PluginHost(fast_settings()) as host:
        await host.load(PluginSpec(slug="guard", command=f"file://{target}", checksum=checksum))
        swapper = threading.Thread(target=swap, daemon=True)
        swapper.start()
        try:
            for _ in range(40):
                try:
                    await host.reload("guard")
                    started += 1
                except PluginError:
                    pass  # the evil file was there when it was opened: a checksum mismatch
                assert not marker.exists(), "a file other than the one hashed was executed"
        finally:
            stop.set()
            swapper.join()
        assert host.status("guard").state == PluginState.HEALTHY
    assert not marker.exists(), "a file other than the one hashed was executed"
    assert started > 0, "no reload found the good file in place"


@pytest.mark.parametrize("example", ["header-enricher", "ip-filter"])
async def test_python_example_plugins_run_from_their_open_file(tmp_path: Path, example: str) -> None:
    path = plugin_at(tmp_path / example / "plugin.py", EXAMPLES / example / "plugin.py")
    checksum = hashlib.sha256(path.read_bytes()).hexdigest()
    async with PluginHost(fast_settings()) as host:
        status = await host.load(PluginSpec(slug=example, command=f"file://{path}", checksum=checksum))
        assert status.state == PluginState.HEALTHY
        assert status.pid is not None
        # `ps` still shows where the plugin lives.
        assert str(path) in Path(f"/proc/{status.pid}/cmdline").read_bytes().decode(errors="replace")


async def test_the_go_example_runs_from_its_open_file(go_plugin: Path, tmp_path: Path) -> None:
    checksum = hashlib.sha256(go_plugin.read_bytes()).hexdigest()
    async with PluginHost(fast_settings()) as host:
        status = await host.load(PluginSpec(slug="go", command=f"file://{go_plugin}", checksum=checksum))
        assert status.state == PluginState.HEALTHY


async def refused(path: Path) -> str:
    async with PluginHost(fast_settings()) as host:
        with pytest.raises(PluginStartError) as info:
            await host.load(PluginSpec(slug="p", command=f"file://{path}"))
    message = str(info.value)
    assert message.startswith("refused by the security policy: "), message
    return message


async def test_a_plugin_in_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    path = plugin_at(shared / "guard")
    shared.chmod(0o777)
    message = await refused(path)
    assert f"directory {shared} " in message and "mode 0777" in message, message
    assert f"chmod go-w {shared}" in message
    shared.chmod(0o775)  # group-writable is the same
    assert "mode 0775" in await refused(path)


async def test_a_plugin_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = plugin_at(tmp_path / "guard")
    os.chown(path, NOBODY, -1)
    message = await refused(path)
    assert f"plugin executable {path} is owned by uid {NOBODY}" in message, message


async def test_a_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    path = plugin_at(theirs / "guard")
    os.chown(theirs, NOBODY, -1)
    message = await refused(path)
    assert f"directory {theirs} " in message and f"uid {NOBODY}" in message, message


async def test_a_symlink_in_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    target = plugin_at(tmp_path / "safe" / "guard")
    links = tmp_path / "links"
    links.mkdir()
    (links / "guard").symlink_to(target)
    links.chmod(0o777)
    message = await refused(links / "guard")
    assert f"directory {links} " in message, message


async def test_a_sticky_directory_protects_only_what_we_own(tmp_path: Path) -> None:
    sticky = tmp_path / "sticky"
    ours = plugin_at(sticky / "ours")
    theirs = plugin_at(sticky / "theirs")
    sticky.chmod(0o1777)  # like /tmp
    os.chown(theirs, NOBODY, -1)
    async with PluginHost(fast_settings()) as host:
        status = await host.load(PluginSpec(slug="ours", command=f"file://{ours}"))
        assert status.state == PluginState.HEALTHY
    assert f"uid {NOBODY}" in await refused(theirs)
