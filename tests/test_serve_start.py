"""Starting `solstice serve` and `solstice edge`: --host/--port, a taken port, a missing key file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TESTBED, terminate, wait_until
from tests.server import ADMIN_TOKEN, free_port

SOLSTICE = [sys.executable, "-m", "solstice"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "SOLSTICE_DATA_DIR": str(tmp_path),
        "SOLSTICE_ADMIN_TOKEN": ADMIN_TOKEN,
        "OCI_PLUGINS_CACHE_DIR": str(tmp_path / "oci"),
        "ALLOW_INTERNAL_NETWORK_ACCESS": "true",
        **extra,
    }
    for name in list(env):
        if name.startswith(("OCI_PLUGINS_PUBLIC_KEY_", "OCI_PLUGINS_PUBKEY_")):
            del env[name]
    env.update(extra)
    return env


def _edge_config(tmp_path: Path) -> Path:
    config = tmp_path / "plugins.yaml"
    config.write_text("plugins: []\n")
    return config


RUNTIMES = {
    "serve": lambda tmp_path: [*SOLSTICE, "serve"],
    "edge": lambda tmp_path: [*SOLSTICE, "edge", "--config", str(_edge_config(tmp_path))],
}


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_a_taken_port_ends_the_start_at_once_with_one_line(
    tmp_path: Path, taken_port: int, runtime: str
) -> None:
    args = RUNTIMES[runtime](tmp_path)
    if runtime == "serve":
        args += ["--plugin", f"file://{TESTBED}"]
    env = _env(tmp_path, SOLSTICE_HOST="127.0.0.1", SOLSTICE_PORT=str(taken_port))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        terminate(proc)
        raise AssertionError(f"solstice {runtime} did not exit on a taken port") from None
    assert proc.returncode != 0
    assert stderr == (
        f"solstice: cannot listen on 127.0.0.1:{taken_port}: Address already in use; stop whatever uses "
        "that address or choose another with --host/--port (SOLSTICE_HOST/SOLSTICE_PORT)\n"
    )


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_host_and_port_options_override_the_variables(tmp_path: Path, runtime: str) -> None:
    port = free_port()
    env = _env(tmp_path, SOLSTICE_HOST="192.0.2.1", SOLSTICE_PORT="1")
    proc = subprocess.Popen(
        [*RUNTIMES[runtime](tmp_path), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}: {proc.communicate()[1]!r}")
        return _answers(port)

    try:
        wait_until(answers, 60, what=f"solstice {runtime} to answer on --port {port}")
    finally:
        assert terminate(proc) == 0


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_a_missing_public_key_file_ends_the_start_with_one_line(tmp_path: Path, runtime: str) -> None:
    missing = tmp_path / "keys" / "cosign.pub"
    env = _env(tmp_path, OCI_PLUGINS_PUBLIC_KEY_2=str(missing))
    done = subprocess.run(
        [*RUNTIMES[runtime](tmp_path), "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        f"solstice: OCI_PLUGINS_PUBLIC_KEY_2 names the file {missing}, which cannot be read "
        "(No such file or directory); set it to the contents or the path of a cosign.pub file.\n"
    )
