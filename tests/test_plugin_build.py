"""`solstice plugin build`: one executable that runs without Python or Solstice, as file:// and oci://.

The build (PyInstaller, tens of seconds) runs once for the module; every test uses its output.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from solstice.protocol import pb, pb_grpc
from tests.conftest import EXAMPLES, ROOT, child_pids
from tests.gateway.conftest import Route, echo_headers
from tests.oci.registries import Registry
from tests.server import Server

SOURCE = EXAMPLES / "header-enricher" / "plugin.py"
SOLSTICE = [sys.executable, "-m", "solstice"]
# Variables of the developer's shell that would change what the commands do.
_FOREIGN = ("SOLSTICE_", "OCI_PLUGINS_", "AI_STUDIO_", "COSIGN_", "DOCKER_CONFIG", "SOURCE_DATE_EPOCH")


@dataclass(frozen=True)
class Build:
    path: Path
    sha256: str
    size: int
    seconds: float
    output: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """header-enricher built once with `solstice plugin build`, from a scratch working directory."""
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        pytest.fail("PyInstaller is missing; run `make test` (it installs solstice[dev])", pytrace=False)
    work = tmp_path_factory.mktemp("build")
    before = sorted(p.name for p in SOURCE.parent.iterdir())
    started = time.monotonic()
    done = subprocess.run(
        [*SOLSTICE, "plugin", "build", str(SOURCE), "-o", "out/header-enricher"],
        cwd=work, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    # Nothing but the executable: no build/, dist/ or .spec beside the plugin or in the working directory.
    assert sorted(p.name for p in SOURCE.parent.iterdir()) == before
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == ["out", "out/header-enricher"]
    path = work / "out" / "header-enricher"
    match = re.search(r"sha256\s+([0-9a-f]{64})", done.stdout)
    size = re.search(r"size\s+(\d+) bytes", done.stdout)
    assert match and size, done.stdout
    print(
        f"\nsolstice plugin build: {seconds:.1f} s, {int(size.group(1)) / (1 << 20):.1f} MiB", file=sys.stderr
    )
    return Build(path, match.group(1), int(size.group(1)), seconds, done.stdout)


def test_build_reports_path_size_checksum_and_time(built: Build) -> None:
    lines = built.output.splitlines()
    assert re.fullmatch(rf"Built {re.escape(str(built.path))} in \d+\.\d s", lines[0]), lines
    assert built.size == built.path.stat().st_size
    assert (
        built.sha256
        == subprocess.run(
            ["sha256sum", str(built.path)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    assert os.access(built.path, os.X_OK)
    assert "platform linux/" in built.output


def test_runs_standalone_in_a_bare_environment(built: Build, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    exe = clean / "header-enricher"
    shutil.copy2(built.path, exe)
    proc = subprocess.Popen(
        [str(exe), "--listen", "127.0.0.1:0"],
        cwd=clean, env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.fullmatch(r"listening on grpc://127\.0\.0\.1:(\d+)\n", line)
        assert found, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        # It loads no Python from this machine: its interpreter and libraries come from inside it.
        # (--onefile: the bootloader unpacks into a _MEI… directory and runs Python in a child process.)
        loaded = {
            line.split()[-1]
            for pid in (proc.pid, *child_pids(proc.pid))
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
            if line.split()[-1].startswith("/")
        }
        assert any("/_MEI" in path and "libpython3" in path for path in loaded), sorted(loaded)
        outside = (sys.prefix, sys.base_prefix, str(ROOT), "/usr/lib/python3", "/usr/local/lib/python3")
        foreign = sorted(path for path in loaded if path.startswith(outside))
        assert not foreign, foreign
        with grpc.insecure_channel(f"127.0.0.1:{found.group(1)}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="plugin"), timeout=10
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub = pb_grpc.PluginStub(channel)
            info = stub.GetInfo(pb.GetInfoRequest(), timeout=10)
            assert (info.name, list(info.hooks)) == ("header-enricher", [pb.HOOK_POST_AUTH])
            stub.Configure(pb.ConfigureRequest(config_json='{"headers": {"X-Team": "search"}}'), timeout=10)
            ctx = pb.RequestContext(request_id="req-7", app=pb.App(id="app-1"))
            answer = stub.PostAuth(pb.PostAuthRequest(context=ctx, request=pb.HttpRequest()), timeout=10)
            added = {h.name: h.value for h in answer.modify.set_headers}
            assert added == {"X-Team": "search", "X-Solstice-App": "app-1", "X-Request-ID": "req-7"}
            with pytest.raises(grpc.RpcError) as bad:
                stub.Configure(pb.ConfigureRequest(config_json='{"headers": {"X-Team": 1}}'), timeout=10)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The noauth test registry (tests/oci/registries.py), one for the module."""
    with Registry(tmp_path_factory.mktemp("registry"), "noauth") as started:
        yield started


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real server that pulls oci:// plugins into its own cache (a loopback registry is plain HTTP)."""
    data = tmp_path_factory.mktemp("server")
    started = Server(data, env={"AI_STUDIO_OCI_CACHE_DIR": str(data / "oci-cache")}).wait_ready()
    yield started
    started.stop()


def register(server: Server, name: str, command: str, **fields: object) -> dict:
    body = {
        "name": name,
        "command": command,
        "hook_type": "post_auth",
        "config": {"headers": {"X-Team": name}},
    }
    with server.client() as client:
        created = client.post("/api/v1/plugins", json={**body, **fields})
    assert created.status_code == 201, created.text
    plugin = created.json()
    assert plugin["status"] == "healthy", f"{plugin}\n{server.log()}"
    return plugin


def test_launched_by_a_server_as_file(built: Build, server: Server, tmp_path: Path) -> None:
    exe = tmp_path / "header-enricher"
    shutil.copy2(built.path, exe)
    # The checksum printed by the build is what the server checks before each start.
    plugin = register(server, "enricher-file", f"file://{exe}", checksum=built.sha256)
    with server.client() as client:
        health = client.get(f"/api/v1/plugins/{plugin['slug']}/health").json()
    assert health["status"] == "healthy" and health["pid"]
    route = Route(server, chain=[{"plugin": plugin["slug"]}])
    echoed = route.call("v1/echo")
    assert echo_headers(echoed)["x-team"] == "enricher-file"


def test_pushed_to_a_registry_and_run_as_oci(
    built: Build, registry: Registry, server: Server, tmp_path: Path
) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith(_FOREIGN)}
    env |= {"HOME": str(tmp_path), "SOLSTICE_DATA_DIR": str(tmp_path / "data")}
    reference = f"oci://{registry.host}/plugins/header-enricher:v1"
    pushed = subprocess.run(
        [*SOLSTICE, "oci", "push", str(built.path), reference],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), pushed.stdout

    plugin = register(server, "enricher-oci", reference, oci_reference=reference.removeprefix("oci://"))
    assert plugin["digest"] == digest
    with server.client() as client:
        health = client.get(f"/api/v1/plugins/{plugin['slug']}/health").json()
    assert (health["status"], health["digest"]) == ("healthy", digest)
    route = Route(server, chain=[{"plugin": plugin["slug"]}])
    echoed = route.call("v1/echo")
    assert echo_headers(echoed)["x-team"] == "enricher-oci"


def test_without_pyinstaller_one_sentence_names_the_extra(tmp_path: Path) -> None:
    # A None entry in sys.modules makes `import PyInstaller` fail as if it were not installed.
    hide = "import sys; sys.modules['PyInstaller'] = None; from solstice.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", hide, "plugin", "build", str(SOURCE)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (1, "")
    assert (
        done.stderr
        == "solstice: PyInstaller is not installed; run pip install 'solstice[build]' and build again\n"
    )
    assert list(tmp_path.iterdir()) == []
