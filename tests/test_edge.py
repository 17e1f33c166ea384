"""`solstice edge` as real processes: one control plane, two edges in different namespaces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, TESTBED, child_pids, pid_alive, terminate, wait_until
from tests.server import Server, free_port


class Edge:
    """`solstice edge` with its own data directory and port; stopped by PID."""

    def __init__(
        self,
        root: Path,
        control: Server | None,
        token: str,
        namespace: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        config: Path | None = None,
    ) -> None:
        self.root, self.control, self.token, self.namespace = root, control, token, namespace
        self.extra_env = env or {}
        self.config = config
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Edge:
        self.root.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "SOLSTICE_PORT": str(self.port),
            "SOLSTICE_HOST": "127.0.0.1",
            "SOLSTICE_DATA_DIR": str(self.root),
            "SOLSTICE_EDGE_TOKEN": self.token,
            "SOLSTICE_EDGE_SYNC_WAIT": "5",
            "SOLSTICE_LOG_FORMAT": "json",
            "OCI_PLUGINS_CACHE_DIR": str(self.root / "oci"),
            "ALLOW_INTERNAL_NETWORK_ACCESS": "true",
            **self.extra_env,
        }
        args = [sys.executable, "-m", "solstice", "edge"]
        if self.config is not None:
            args += ["--config", str(self.config)]
        else:
            args += ["--control-url", self.control.url, "--namespace", self.namespace]
        self.log = open(self.root / "edge.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.ready() is not None, 30, self.read_log)
        return self

    def ready(self) -> dict[str, Any] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the edge exited with {self.proc.returncode}:\n{self.read_log()}")
        try:
            answer = httpx.get(f"{self.url}/readyz", timeout=2)
        except httpx.TransportError:
            return None
        return answer.json() if answer.status_code == 200 else None

    def read_log(self) -> str:
        return (self.root / "edge.log").read_text(errors="replace")

    def plugin_commands(self) -> list[str]:
        """The command lines of the plugin processes this edge runs."""
        assert self.proc is not None
        found = []
        for pid in child_pids(self.proc.pid):
            try:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except FileNotFoundError:
                continue
        return found

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
        self.log.close()


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "control").mkdir()
    server = Server(tmp_path / "control").wait_ready()
    yield server
    server.stop()


@pytest.fixture
def edges(tmp_path: Path, control: Server) -> Iterator[tuple[Edge, Edge]]:
    with control.client() as client:
        token = client.post("/api/v1/tokens", json={"name": "edges", "scope": "edge"}).json()["token"]
    pair = (
        Edge(tmp_path / "edge-a", control, token, "team-a"),
        Edge(tmp_path / "edge-b", control, token, "team-b"),
    )
    for edge in pair:
        edge.start()
    yield pair
    for edge in pair:
        edge.stop()


def marker_copy(directory: Path, marker: str) -> Path:
    """The testbed plugin under a name that shows in its process's command line."""
    path = directory / f"testbed-{marker}.py"
    path.write_bytes(TESTBED.read_bytes())
    path.chmod(0o755)
    return path


def test_plugins_follow_their_namespace_and_survive_the_control_plane(
    tmp_path: Path, control: Server, edges: tuple[Edge, Edge]
) -> None:
    edge_a, edge_b = edges
    marker = uuid.uuid4().hex[:8]
    plugin_file = marker_copy(tmp_path, marker)
    with control.client() as client:
        # A global LLM and app, so every edge can serve a request.
        assert client.post("/api/v1/llms", json={"name": "Echo", "vendor": "mock"}).status_code == 201
        app_key = client.post("/api/v1/apps", json={"name": "demo", "llms": ["echo"]}).json()["key"]
        created = client.post(
            "/api/v1/plugins",
            json={"name": "a", "slug": "guard", "command": f"file://{plugin_file}", "hook_type": "pre_auth",
                  "namespace": "team-a", "config": {"header": "X-One"}},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        began = time.monotonic()
        wait_until(lambda: any(marker in c for c in edge_a.plugin_commands()), 10, edge_a.read_log)
        assert time.monotonic() - began < 2.5
        assert not any(marker in c for c in edge_b.plugin_commands())

        # A config change reaches the edge: its plugin is reloaded (a new process).
        before = set(child_pids(edge_a.proc.pid))  # type: ignore[union-attr]
        client.patch("/api/v1/plugins/guard", json={"config": {"header": "X-Two"}})
        wait_until(lambda: set(child_pids(edge_a.proc.pid)) - before, 10, edge_a.read_log)  # type: ignore[union-attr]

        # Edges are listed with the version they run.
        listed = {e["id"]: e for e in client.get("/api/v1/edges").json()}
        assert {e["namespace"] for e in listed.values()} == {"team-a", "team-b"}

        # Reloading the plugin on the control plane reloads it on the edge that runs it too.
        before = set(child_pids(edge_a.proc.pid))  # type: ignore[union-attr]
        assert client.post("/api/v1/plugins/guard/reload").status_code == 200
        wait_until(lambda: set(child_pids(edge_a.proc.pid)) - before, 10, edge_a.read_log)  # type: ignore[union-attr]

        # A reload request restarts the edge's plugins (a new process), here for the namespace.
        before = set(child_pids(edge_a.proc.pid))  # type: ignore[union-attr]
        assert client.post("/api/v1/namespaces/team-a/reload").json() == {"edges": 1}
        wait_until(lambda: set(child_pids(edge_a.proc.pid)) - before, 10, edge_a.read_log)  # type: ignore[union-attr]

    # The control plane dies: both edges keep serving, and say their config is stale.
    control.stop(signal.SIGKILL)
    wait_until(lambda: (edge_a.ready() or {}).get("config", {}).get("stale"), 15, edge_a.read_log)
    assert any(marker in c for c in edge_a.plugin_commands())
    assert "solstice_edge_config_stale 1.0" in httpx.get(f"{edge_a.url}/metrics").text
    body = {"model": "m", "messages": [{"role": "user", "content": "still there?"}]}
    for edge in (edge_a, edge_b):
        answer = httpx.post(
            f"{edge.url}/llm/echo/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {app_key}"},
        )
        assert answer.status_code == 200, (edge.url, answer.text)

    # An edge restarted while the control plane is down serves its persisted snapshot.
    edge_a.stop()
    restarted = Edge(edge_a.root, control, edge_a.token, "team-a", port=edge_a.port).start()
    try:
        status = restarted.ready()
        assert status is not None and status["config"]["source"] == "disk" and status["config"]["stale"]
        wait_until(lambda: any(marker in c for c in restarted.plugin_commands()), 10, restarted.read_log)
    finally:
        restarted.stop()


def test_deleting_a_plugin_stops_it_on_the_edge(
    tmp_path: Path, control: Server, edges: tuple[Edge, Edge]
) -> None:
    edge_a, _ = edges
    marker = uuid.uuid4().hex[:8]
    plugin_file = marker_copy(tmp_path, marker)
    with control.client() as client:
        client.post(
            "/api/v1/plugins",
            json={"name": "g", "slug": "gone", "command": f"file://{plugin_file}", "hook_type": "pre_auth"},
        )
        pids = wait_until(
            lambda: [
                p for p in child_pids(edge_a.proc.pid) if marker in Path(f"/proc/{p}/cmdline").read_text()
            ],  # type: ignore[union-attr]
            10,
            edge_a.read_log,
        )
        assert client.delete("/api/v1/plugins/gone").status_code == 204
    wait_until(lambda: not any(pid_alive(p) for p in pids), 10, edge_a.read_log)


def test_an_unwritable_oci_cache_stops_the_edge_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = {
        **os.environ, "SOLSTICE_DATA_DIR": str(tmp_path), "SOLSTICE_EDGE_TOKEN": "sol_x",
        "OCI_PLUGINS_CACHE_DIR": str(blocker / "cache"),
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "solstice", "edge", "--control-url", "http://127.0.0.1:9"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(f"solstice: the OCI cache directory {blocker / 'cache'} is not writable")
    assert "OCI_PLUGINS_CACHE_DIR" in done.stderr and done.stderr.count("\n") == 1


def test_an_edge_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    env = {**os.environ, "SOLSTICE_DATA_DIR": str(tmp_path), "SOLSTICE_EDGE_TOKEN": ""}
    done = subprocess.run(
        [sys.executable, "-m", "solstice", "edge", "--control-url", "http://127.0.0.1:9"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("solstice: no edge token: set SOLSTICE_EDGE_TOKEN")


PLUGINS_YAML = """
plugins:
  - slug: guard
    command: file://{plugin}
    hook_types: [pre_auth]
llms:
  - slug: mock
    vendor: mock
    options: {options}
    plugins:
      - plugin: guard
apps:
  - name: demo
    llms: [mock]
    keys_env: [DEMO_KEY]
"""


def test_an_edge_serves_a_watched_config_file(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex[:8]
    plugin_file = marker_copy(tmp_path, marker)
    config = tmp_path / "plugins.yaml"
    config.write_text(PLUGINS_YAML.format(plugin=plugin_file, options="{}"))
    edge = Edge(tmp_path / "edge", None, "", "", env={"DEMO_KEY": "sk-demo-123"}, config=config).start()
    try:
        status = edge.ready()
        assert status is not None and status["config"]["source"] == "file"
        assert any(marker in c for c in edge.plugin_commands())
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(
            f"{edge.url}/llm/mock/v1/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-demo-123"},
        )
        assert answer.status_code == 200, answer.text
        assert httpx.post(f"{edge.url}/llm/mock/v1/chat/completions", json=body).status_code == 401

        # A broken edit keeps the last good configuration; a good one is applied.
        config.write_text("plugins: [{slug: BAD}]\n")
        wait_until(lambda: "config file not applied" in edge.read_log(), 10, edge.read_log)
        assert any(marker in c for c in edge.plugin_commands())
        config.write_text("plugins: []\n")  # a good edit: the plugin goes away
        wait_until(lambda: not any(marker in c for c in edge.plugin_commands()) or None, 10, edge.read_log)
    finally:
        edge.stop()


def test_a_bad_config_file_stops_the_edge_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "plugins.yaml"
    config.write_text("llms:\n  - slug: x\n    plugins: [{plugin: nope}]\n")
    done = subprocess.run(
        [sys.executable, "-m", "solstice", "edge", "--config", str(config)],
        env={**os.environ, "SOLSTICE_DATA_DIR": str(tmp_path), "OCI_PLUGINS_CACHE_DIR": str(tmp_path / "oci")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"solstice: {config}: llm x uses plugin 'nope', which is not defined\n"


ENDPOINTS_YAML = """
plugins:
  - slug: routes
    command: file://{plugin}
    hook_types: [custom_endpoint]
    config: {{greeting: edge}}
apps:
  - name: demo
    llms: []
    keys_env: [DEMO_KEY]
"""


def test_an_edge_serves_plugin_endpoints(tmp_path: Path) -> None:
    config = tmp_path / "plugins.yaml"
    config.write_text(ENDPOINTS_YAML.format(plugin=ROOT / "tests" / "plugins" / "routes.py"))
    edge = Edge(tmp_path / "edge", None, "", "", env={"DEMO_KEY": "sk-demo-123"}, config=config).start()
    try:
        assert edge.ready() is not None
        echoed = httpx.get(f"{edge.url}/plugins/routes/echo/ada")
        assert echoed.status_code == 200 and echoed.json()["greeting"] == "edge ada", echoed.text
        assert httpx.post(f"{edge.url}/plugins/routes/store", content=b"x").status_code == 401
        stored = httpx.post(
            f"{edge.url}/plugins/routes/store", content=b"x", headers={"Authorization": "Bearer sk-demo-123"}
        )
        assert stored.status_code == 201 and stored.json()["authenticated"] is True, stored.text
        with httpx.stream("GET", f"{edge.url}/plugins/routes/count/3") as counted:
            assert counted.status_code == 200
            assert "".join(counted.iter_text()) == "0\n1\n2\n"
    finally:
        edge.stop()


SERVICES_YAML = """
plugins:
  - slug: services
    command: file://{plugin}
    hook_types: [custom_endpoint]
    scopes: [kv.readwrite, llms.call]
llms:
  - slug: mock
    vendor: mock
"""


def test_an_edge_keeps_plugin_data_in_its_own_file_and_takes_approvals_from_plugins_yaml(
    tmp_path: Path,
) -> None:
    config = tmp_path / "plugins.yaml"
    config.write_text(SERVICES_YAML.format(plugin=ROOT / "tests" / "plugins" / "services.py"))
    edge = Edge(tmp_path / "edge", None, "", "", config=config).start()
    base = f"{edge.url}/plugins/services"
    try:
        assert httpx.put(f"{base}/kv/note", content=b"kept").json() == {"result": False}
        assert httpx.get(f"{base}/ask/mock").json()["result"] == {"status": 200, "content": "echo: tell me"}
        with httpx.stream("GET", f"{base}/sse/mock") as streamed:
            assert "".join(streamed.iter_text()).rstrip().endswith("data: [DONE]")
        refused = httpx.get(f"{base}/apps")
        assert refused.status_code == 403
        assert refused.json()["message"] == (
            "plugin services may not use apps.read until an operator approves it: "
            "add apps.read to the scopes of plugin services in the edge's plugins.yaml"
        )
        edge.stop()
        edge.start()
        assert httpx.get(f"{base}/kv/note").json() == {"result": "kept"}
        assert (tmp_path / "edge" / "plugin-data.sqlite3").exists()
        # Approving is editing the file: the watched file is applied, the call works, no restart.
        assert edge.proc is not None
        pids = child_pids(edge.proc.pid)
        config.write_text(config.read_text().replace("llms.call]", "llms.call, apps.read]"))
        wait_until(lambda: httpx.get(f"{base}/apps").status_code == 200, 15, edge.read_log)
        assert child_pids(edge.proc.pid) == pids
        # Removing the plugin from the file removes its data; a plugin added back under its slug starts empty.
        # It is forgotten once a second configuration in a row lacks it (one half-saved file is not enough).
        full = config.read_text()
        without = "plugins: []\nllms:" + full.split("llms:", 1)[1]
        config.write_text(without)
        wait_until(lambda: httpx.get(f"{base}/kv/note").status_code == 404, 15, edge.read_log)
        config.write_text(without + "  - slug: other\n    vendor: mock\n")
        wait_until(lambda: "removed plugin's data deleted" in edge.read_log(), 15, edge.read_log)
        config.write_text(full)
        wait_until(lambda: httpx.get(f"{base}/kv/note").status_code == 200, 30, edge.read_log)
        assert httpx.get(f"{base}/kv/note").json() == {"result": None}
    finally:
        edge.stop()


def test_an_approval_on_the_control_plane_reaches_a_synced_edge(
    tmp_path: Path, control: Server, edges: tuple[Edge, Edge]
) -> None:
    edge = edges[0]
    with control.client() as client:
        created = client.post("/api/v1/plugins", json={
            "name": "services", "command": f"file://{ROOT / 'tests' / 'plugins' / 'services.py'}",
            "hook_types": ["custom_endpoint"], "namespace": "team-a",
        })  # fmt: skip
        assert created.status_code == 201, created.text
    base = f"{edge.url}/plugins/services"
    wait_until(lambda: httpx.get(f"{base}/kv/x").status_code == 403, 30, edge.read_log)
    assert "approve it on the control plane" in httpx.get(f"{base}/kv/x").json()["message"]
    with control.client() as client:
        approved = client.post("/api/v1/plugins/services/scopes/approve", json={"scopes": ["kv.readwrite"]})
        assert approved.status_code == 200, approved.text
    wait_until(lambda: httpx.put(f"{base}/kv/x", content=b"edge").status_code == 200, 30, edge.read_log)
    # The edge's data is its own: the control plane's plugin does not see it.
    assert httpx.get(f"{control.url}/plugins/services/kv/x").json() == {"result": None}
