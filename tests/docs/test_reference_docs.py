"""The reference docs are checked against the code and against a running Solstice.

- docs/configuration.md: every variable the Settings model (and the CLI client) reads, with its
  default, and the variables read outside the model.
- docs/writing-plugins-python.md: the example plugin runs under a server (file:// and grpc://),
  and the in-process test snippet passes.
- docs/writing-plugins-go.md: the Go program is examples/plugins/go-request-guard/main.go, which
  is built and run under a server.
- docs/architecture.md: the package map names every package of src/solstice and nothing else.
- docs/troubleshooting.md: every situation is triggered for real and the message Solstice
  produced must be quoted in the page.

Masking convention for troubleshooting messages: each case runs in its own directory BASE
(`tmp/<case>`), and BASE is removed from messages, so `BASE/plugins/my-plugin` is quoted as
`/plugins/my-plugin`. Each plugin's slug is shown as `my-plugin`. The grpc:// port is shown as
50051, the registry as 127.0.0.1:5000 (`127_0_0_1_5000` in variable names), process ids as 4242,
64-digit hex digests as <hex>, and timeouts shortened for the test as their defaults (`within
10s` for SOLSTICE_PLUGIN_CONNECT_TIMEOUT, `within 60s` for SOLSTICE_PLUGIN_HANDSHAKE_TIMEOUT).
"""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import AliasChoices
from pydantic_core import PydanticUndefined

from solstice.cli.client import ClientConfig
from solstice.settings import Settings
from tests.conftest import ROOT, Standalone, terminate, wait_until
from tests.oci.registries import Registry
from tests.server import ADMIN_TOKEN, Server, free_port

DOCS = ROOT / "docs"
SRC = ROOT / "src" / "solstice"
EDGE_TOKEN = "sol_docs_edge_token_0123456789abcdefghij"
GRPC_PORT_SHOWN = "50051"
REGISTRY_SHOWN = "127.0.0.1:5000"


def read(name: str) -> str:
    return (DOCS / name).read_text()


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


# -- docs/configuration.md --------------------------------------------------------------------------


def table_rows(text: str) -> list[list[str]]:
    """Cells of every Markdown table row whose first cell names a variable in backticks."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| `"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def documented_variables() -> dict[str, str]:
    """Each name in the first column of a table, mapped to its row's default cell."""
    found: dict[str, str] = {}
    for cells in table_rows(read("configuration.md")):
        for name in re.findall(r"`([^`]+)`", cells[0]):
            found[name] = cells[1]
    return found


def env_names(model: type[Any], prefix: str) -> Iterator[tuple[str, list[str], Any]]:
    for field_name, info in model.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names = [str(choice) for choice in alias.choices]
        elif isinstance(alias, str):
            names = [alias]
        else:
            names = [f"{prefix}{field_name.upper()}"]
        yield field_name, names, info.default


def default_matches(cell: str, default: Any) -> bool:
    if default is None:
        return cell.startswith("(unset)")
    if default == "":
        return cell.startswith("(empty)")
    shown = re.search(r"`([^`]*)`", cell)
    if shown is None:
        return False
    value = shown.group(1)
    if isinstance(default, bool):
        return value == str(default).lower()
    if isinstance(default, Path):
        return os.path.normpath(value) == os.path.normpath(str(default))
    if isinstance(default, float):
        return float(value) == default
    return value == str(default)


def test_every_setting_is_documented_with_its_default() -> None:
    documented = documented_variables()
    problems = []
    for model, prefix in ((Settings, "SOLSTICE_"), (ClientConfig, "SOLSTICE_")):
        for field_name, names, default in env_names(model, prefix):
            assert default is not PydanticUndefined, f"{field_name} has no default"
            for name in names:
                if name not in documented:
                    problems.append(f"{name} ({model.__name__}.{field_name}) is missing")
                elif not default_matches(documented[name], default):
                    problems.append(f"{name}: documented {documented[name]!r}, code default {default!r}")
    assert not problems, "docs/configuration.md is out of date:\n" + "\n".join(problems)


def variables_read_outside_the_model() -> set[str]:
    """Names of environment variables the code reads other than through Settings fields."""
    from solstice.cli import oci as cli_oci
    from solstice.host import containment
    from solstice.oci import credentials, keys
    from solstice.protocol import handshake

    serve = importlib.import_module("solstice.sdk.serve")
    names = {f"{credentials.PREFIX}<NAME>_{field}" for field in credentials.FIELDS}
    names |= {f"{prefix}<N>" for prefix in keys.PUBLIC_KEY_ENV_PREFIXES}
    names |= {cli_oci.PASSWORD_ENV, cli_oci.SOURCE_DATE_EPOCH, serve.ENV_LISTEN}
    names |= {
        handshake.MAGIC_COOKIE_KEY,
        handshake.ENV_PROTOCOL_VERSIONS,
        handshake.ENV_MIN_PORT,
        handshake.ENV_MAX_PORT,
        handshake.ENV_UNIX_SOCKET_DIR,
        containment.HOST_ID_ENV,
    }
    # Literal reads anywhere in the source: environ["X"], environ.get("X"), os.getenv("X").
    pattern = re.compile(r"""(?:environ(?:\.get\(|\[)|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']""")
    for path in SRC.rglob("*.py"):
        names |= set(pattern.findall(path.read_text()))
    return names


def test_variables_read_outside_the_model_are_documented() -> None:
    documented = documented_variables()
    missing = sorted(name for name in variables_read_outside_the_model() if name not in documented)
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_every_documented_variable_exists() -> None:
    known = variables_read_outside_the_model()
    for model in (Settings, ClientConfig):
        for _, names, _ in env_names(model, "SOLSTICE_"):
            known |= set(names)
    known |= {"HOME"}  # Docker's config.json fallback reads $HOME/.docker/config.json
    stale = sorted(set(documented_variables()) - known)
    assert not stale, f"docs/configuration.md documents variables the code does not read: {stale}"


def test_handshake_values_in_the_docs_are_the_hosts() -> None:
    from solstice.protocol import handshake

    config = read("configuration.md")
    go = read("writing-plugins-go.md")
    for text in (config, go):
        assert handshake.MAGIC_COOKIE_KEY in text and handshake.MAGIC_COOKIE_VALUE in text
    assert f"| `ProtocolVersion` | `{handshake.APP_PROTOCOL_VERSION}` |" in go


# -- docs/architecture.md ----------------------------------------------------------------------------


def test_the_package_map_is_true_to_the_tree() -> None:
    text = read("architecture.md").split("## Package map", 1)[1]
    mapped = {row[0].strip("`") for row in table_rows(text)}
    packages = {f"{p.name}/" for p in SRC.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    modules = {p.name for p in SRC.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert mapped == packages | modules


# -- docs/writing-plugins-go.md -----------------------------------------------------------------------


def test_the_go_page_shows_the_example_unchanged() -> None:
    blocks = code_blocks(read("writing-plugins-go.md"), "go")
    assert blocks == [(ROOT / "examples/plugins/go-request-guard/main.go").read_text()]


def test_the_go_build_command_is_the_one_the_tests_use() -> None:
    text = read("writing-plugins-go.md")
    assert (
        "GOPATH=$PWD/go:/usr/share/gocode GO111MODULE=off go build -o request-guard "
        "./examples/plugins/go-request-guard"
    ) in text


# -- servers shared by the remaining tests ---------------------------------------------------------


class Env:
    """The module's servers, registry and directories."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = Registry(root / "registry", "basic")
        self.keys = root / "keys"
        self.keys.mkdir()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("docs")
    state = Env(root)
    registry = state.registry.start()
    subprocess.run(
        [sys.executable, "-m", "solstice", "keys", "generate"],
        cwd=state.keys, env={**os.environ, "COSIGN_PASSWORD": ""}, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    name = f"127_0_0_1_{registry.port}"
    (root / "dev").mkdir()
    (root / "strict").mkdir()
    # dev: the development settings of the reference page, with short timeouts for the test.
    state.dev = Server(
        root / "dev",
        env={
            "SOLSTICE_PLUGIN_CONNECT_TIMEOUT": "1",
            "SOLSTICE_PLUGIN_HANDSHAKE_TIMEOUT": "2",
            "SOLSTICE_PLUGIN_RESTART_BACKOFF": "3",
            "SOLSTICE_EDGE_TOKEN": EDGE_TOKEN,
            "OCI_PLUGINS_REGISTRY_WRONG_USERNAME": registry.user or "",
            "OCI_PLUGINS_REGISTRY_WRONG_PASSWORD": "not-the-password",
            "OCI_PLUGINS_REGISTRY_WRONG_HOST": registry.host,
        },
    )
    # strict: the default policy, signatures required, credentials and a public key configured.
    state.strict = Server(
        root / "strict",
        env={
            "ALLOW_INTERNAL_NETWORK_ACCESS": "",
            "AI_STUDIO_OCI_REQUIRE_SIGNATURE": "true",
            "OCI_PLUGINS_PUBLIC_KEY_1": str(state.keys / "cosign.pub"),
            f"OCI_PLUGINS_REGISTRY_{name}_USERNAME": registry.user or "",
            f"OCI_PLUGINS_REGISTRY_{name}_PASSWORD": registry.password or "",
        },
    )
    state.push_env = {
        **os.environ,
        f"OCI_PLUGINS_REGISTRY_{name}_USERNAME": registry.user or "",
        f"OCI_PLUGINS_REGISTRY_{name}_PASSWORD": registry.password or "",
    }
    try:
        state.dev.wait_ready()
        state.strict.wait_ready()
        yield state
    finally:
        state.dev.stop()
        state.strict.stop()
        registry.close()


def create(server: Server, body: dict[str, Any]) -> httpx.Response:
    with server.client() as client:
        return client.post("/api/v1/plugins", json=body)


def executable(path: Path, text: str, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


class Route:
    """An LLM (mock vendor) with a chain, and an app key that may call it."""

    def __init__(self, server: Server, chain: list[dict[str, Any]]) -> None:
        self.server = server
        self.slug = f"llm-{uuid.uuid4().hex[:8]}"
        with server.client() as client:
            assert client.post("/api/v1/llms", json={"name": self.slug, "vendor": "mock"}).status_code == 201
            answer = client.put(f"/api/v1/llms/{self.slug}/plugins", json={"plugins": chain})
            assert answer.status_code == 200, answer.text
            app = client.post("/api/v1/apps", json={"name": f"app-{self.slug}", "llms": [self.slug]})
            assert app.status_code == 201, app.text
        self.key = app.json()["key"]

    def call(self, text: str, path: str = "v1/echo") -> httpx.Response:
        body = {"model": "m", "messages": [{"role": "user", "content": text}]}
        return httpx.post(
            f"{self.server.url}/llm/{self.slug}/{path}",
            json=body, headers={"Authorization": f"Bearer {self.key}"}, timeout=30,
        )  # fmt: skip


# -- docs/writing-plugins-python.md ------------------------------------------------------------------


def python_example() -> str:
    blocks = [b for b in code_blocks(read("writing-plugins-python.md"), "python") if b.startswith("#!")]
    assert len(blocks) == 1, "the page must hold exactly one complete plugin (a block starting with #!)"
    return blocks[0]


def test_the_python_example_runs_under_solstice(env: Env) -> None:
    plugin = executable(env.root / "python" / "word_guard.py", python_example())
    slug = f"word-guard-{uuid.uuid4().hex[:6]}"
    answer = create(env.dev, {
        "name": slug, "command": f"file://{plugin}", "hook_type": "pre_auth",
        "config": {"blocked_words": ["secret"], "tag": "default"},
    })  # fmt: skip
    assert answer.status_code == 201 and answer.json()["status"] == "healthy", answer.text
    with env.dev.client() as client:
        health = client.get(f"/api/v1/plugins/{slug}/health").json()
    assert health["status"] == "healthy" and health["pid"]

    # The page's example: the mock LLM's override replaces the list, so `secret` passes there.
    overridden = Route(env.dev, [{"plugin": slug, "config_override": {"blocked_words": ["forbidden"]}}])
    plain = Route(env.dev, [{"plugin": slug}])
    passed = overridden.call("a secret plan")
    assert passed.status_code == 200, passed.text
    assert ["x-word-guard", "default"] in passed.json()["headers"]
    blocked = overridden.call("a FORBIDDEN plan")
    assert blocked.status_code == 403
    assert blocked.json() == {"error": {"message": "blocked word 'forbidden'", "type": "blocked"}}
    assert plain.call("a secret plan").status_code == 403
    assert plain.call("hello").status_code == 200

    # Its log line reaches Solstice's log, tagged with the plugin.
    def logged() -> bool:
        for line in env.dev.log().splitlines():
            if line.startswith("{") and slug in line:
                record = json.loads(line)
                if record.get("plugin") == slug and "blocked request" in record.get("event", ""):
                    return record["stream"] == "stderr" and record["level"] == "info"
        return False

    wait_until(logged, timeout=10)


def test_the_python_example_serves_grpc_standalone(env: Env) -> None:
    plugin = executable(env.root / "python-grpc" / "word_guard.py", python_example())
    server = Standalone(plugin)
    try:
        slug = f"word-guard-grpc-{uuid.uuid4().hex[:6]}"
        answer = create(env.dev, {
            "name": slug, "command": server.command, "hook_type": "pre_auth",
            "config": {"blocked_words": ["secret"]},
        })  # fmt: skip
        assert answer.status_code == 201 and answer.json()["status"] == "healthy", answer.text
        route = Route(env.dev, [{"plugin": slug}])
        assert route.call("secret").status_code == 403
        assert ["x-word-guard", "checked"] in route.call("hello").json()["headers"]
        with env.dev.client() as client:
            assert client.delete(f"/api/v1/plugins/{slug}").status_code == 204
    finally:
        assert server.stop(signal.SIGTERM) == 0


def test_the_python_in_process_test_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executable(tmp_path / "word_guard.py", python_example())
    snippets = [b for b in code_blocks(read("writing-plugins-python.md"), "python") if "def test_" in b]
    assert len(snippets) == 1
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("word_guard", None)
    namespace: dict[str, Any] = {}
    exec(compile(snippets[0], "writing-plugins-python.md", "exec"), namespace)
    tests = [value for key, value in namespace.items() if key.startswith("test_")]
    assert tests
    for test in tests:
        test()
    sys.modules.pop("word_guard", None)
    importlib.invalidate_caches()


def test_the_python_page_names_the_sdk_helpers() -> None:
    import solstice.sdk

    text = read("writing-plugins-python.md")
    for name in solstice.sdk.__all__:
        assert f"`{name}" in text or f"{name}(" in text, name
    from solstice.hooks import HOOK_TYPES

    for hook in HOOK_TYPES:
        assert f"`{hook}(" in text, hook


def test_the_service_api_page_lists_every_scope_and_sdk_call() -> None:
    from solstice.scopes import SCOPES
    from solstice.sdk.host import Apps, Events, Kv, Llms

    text = read("service-api.md")
    assert [row[0].strip("`") for row in table_rows(text.split("| scope |", 1)[1])][: len(SCOPES)] == list(
        SCOPES
    )
    for client, attribute in ((Kv, "kv"), (Llms, "llms"), (Apps, "apps"), (Events, "events")):
        for method in (m for m in vars(client) if not m.startswith("_")):
            assert f"{attribute}.{method}" in text or f".{method}`" in text or f"`{method}" in text, method


# -- docs/writing-plugins-go.md: the example under a server ---------------------------------------------


def test_the_go_example_runs_under_solstice(env: Env, go_plugin: Path) -> None:
    slug = f"request-guard-{uuid.uuid4().hex[:6]}"
    answer = create(env.dev, {
        "name": slug, "command": f"file://{go_plugin}", "hook_type": "pre_auth",
        "config": {"blocked_words": ["secret"], "max_body_bytes": 65536},
    })  # fmt: skip
    assert answer.status_code == 201 and answer.json()["status"] == "healthy", answer.text
    route = Route(env.dev, [{"plugin": slug}])
    blocked = route.call("my secret")
    assert blocked.status_code == 403
    shown = '{"error":{"message":"request contains the blocked word \\"secret\\"","type":"request_blocked"}}'
    assert blocked.text == shown
    assert f"`{shown}`" in read("writing-plugins-go.md")
    assert route.call("hello").status_code == 200
    alone = subprocess.run([str(go_plugin)], capture_output=True, text=True, timeout=30)
    assert alone.returncode == 1
    assert alone.stderr.splitlines()[0] in read("writing-plugins-go.md")


def test_the_go_example_serves_grpc_standalone(env: Env, go_plugin: Path) -> None:
    """`request-guard -listen ADDR`: the reference page's gRPC wrapper, used as grpc://ADDR."""
    port = free_port()
    server = subprocess.Popen(
        [str(go_plugin), "-listen", f"127.0.0.1:{port}"], stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stderr is not None
        assert f"request-guard serving gRPC on 127.0.0.1:{port}" in server.stderr.readline()
        slug = f"request-guard-grpc-{uuid.uuid4().hex[:6]}"
        answer = create(env.dev, {
            "name": slug, "command": f"grpc://127.0.0.1:{port}", "hook_type": "pre_auth",
            "config": {"blocked_words": ["secret"]},
        })  # fmt: skip
        assert answer.status_code == 201 and answer.json()["status"] == "healthy", answer.text
        route = Route(env.dev, [{"plugin": slug}])
        assert route.call("my secret").status_code == 403
        assert route.call("hello").status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(30)
    assert code == 0
    assert "-listen 127.0.0.1:50051" in read("writing-plugins-go.md")


# -- docs/troubleshooting.md -------------------------------------------------------------------------


class Masker:
    """Turns a message Solstice printed into the form the page quotes (see the module docstring)."""

    def __init__(self, base: Path, slug: str = "", replacements: dict[str, str] | None = None) -> None:
        self.pairs = [(str(base), "")]
        if slug:
            self.pairs.append((slug, "my-plugin"))
        self.pairs += list((replacements or {}).items())

    def __call__(self, message: str) -> str:
        for actual, shown in self.pairs:
            message = message.replace(actual, shown)
        message = re.sub(r"[0-9a-f]{64}", "<hex>", message)
        return re.sub(r"plugin process \d+", "plugin process 4242", message)


class Quotes:
    """Collects (case, message) and checks that the page quotes each message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def add(self, case: str, message: str | None) -> None:
        assert message, f"{case}: no message"
        self.messages.append((case, message))

    def check(self, text: str) -> None:
        missing = [f"{case}: {message}" for case, message in self.messages if message not in text]
        assert not missing, "docs/troubleshooting.md does not quote:\n" + "\n".join(missing)


PANIC = "panic: runtime error: invalid memory address or nil pointer dereference"


def test_troubleshooting_messages_are_the_real_ones(env: Env) -> None:
    quotes = Quotes()
    page = read("troubleshooting.md")
    registry = env.registry
    reg_masks = {
        registry.host: REGISTRY_SHOWN,
        f"127_0_0_1_{registry.port}": "127_0_0_1_5000",
        f"127_0_0_1:{registry.port}": "127_0_0_1:5000",
    }
    plugin_text = (ROOT / "examples/plugins/ip-filter/plugin.py").read_text()
    subprocess.run(
        [sys.executable, "-m", "solstice", "oci", "push", str(executable(env.root / "oci" / "my-plugin", plugin_text)),
         f"oci://{registry.host}/plugins/my-plugin:v1"],
        env=env.push_env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip

    cases: list[tuple[str, Server, Callable[[Path], str], dict[str, Any], dict[str, str]]] = []

    def case(
        name: str,
        server: Server,
        command: Callable[[Path], str],
        masks: dict[str, str] | None = None,
        **body: Any,
    ) -> None:
        cases.append((name, server, command, body, masks or {}))

    def file_at(text: str, mode: int = 0o755) -> Callable[[Path], str]:
        return lambda base: f"file://{executable(base / 'plugins' / 'my-plugin', text, mode)}"

    closed = free_port()
    case("not executable", env.dev, file_at(plugin_text, 0o644))
    case("missing file", env.dev, lambda base: f"file://{base}/plugins/my-plugin")
    case("group-writable", env.dev, file_at(plugin_text, 0o775))
    case("relative path", env.dev, lambda base: "file://./my-plugin")
    case("no scheme", env.dev, lambda base: "/usr/local/bin/my-plugin")
    case("grpc refused", env.dev, lambda base: f"grpc://127.0.0.1:{closed}",
         {str(closed): GRPC_PORT_SHOWN, "within 1s": "within 10s"})  # fmt: skip
    case("internal address", env.strict, lambda base: "grpc://10.0.3.8:50051")
    case("internal loopback", env.strict, lambda base: "grpc://127.0.0.1:50051")
    case("internal localhost", env.strict, lambda base: "grpc://localhost:50051")
    case("not a plugin", env.dev, file_at("#!/bin/sh\necho hello world\nsleep 30\n"))
    case("silent", env.dev, file_at("#!/bin/sh\nsleep 30\n"), {"within 2s": "within 60s"})
    case("crash before handshake", env.dev, file_at(f"#!/bin/sh\necho '{PANIC}' >&2\nexit 2\n"))
    case("schema mismatch", env.dev, file_at(plugin_text), config={"deny": ["203.0.113.0/24"], "denied": []})
    case("config rejected", env.dev, file_at(plugin_text), config={"deny": ["not-a-cidr"]})
    case("oci no credentials", env.dev, lambda base: f"oci://{registry.host}/plugins/my-plugin:v1", reg_masks)
    case("oci wrong credentials", env.dev, lambda base: f"oci://{registry.host}/plugins/my-plugin:v1?auth=wrong",
         reg_masks)  # fmt: skip
    case("oci unreachable", env.dev, lambda base: f"oci://127.0.0.1:{closed}/plugins/my-plugin:v1",
         {f"127.0.0.1:{closed}": REGISTRY_SHOWN})  # fmt: skip
    case("oci missing tag", env.strict, lambda base: f"oci://{registry.host}/plugins/my-plugin:v9", reg_masks)
    case("oci unsigned", env.strict, lambda base: f"oci://{registry.host}/plugins/my-plugin:v1", reg_masks)

    def run(index: int) -> tuple[str, str]:
        name, server, command, body, masks = cases[index]
        base = env.root / f"case{index}"
        base.mkdir()
        slug = f"case-{index}-{uuid.uuid4().hex[:6]}"
        answer = create(server, {
            "name": slug, "command": command(base), "hook_type": "pre_auth", "namespace": "trouble", **body,
        })  # fmt: skip
        data = server.json(answer)
        if answer.status_code == 400:
            message = data["detail"]
        else:
            assert answer.status_code == 201 and data["status"] == "failed", f"{name}: {answer.text}"
            message = data["last_error"]
        return name, Masker(base, slug, masks)(message)

    with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
        for name, message in pool.map(run, range(len(cases))):
            quotes.add(name, message)

    # The path warning of a plugin outside the standard directories.
    with env.dev.client() as client:
        plugins = client.get("/api/v1/plugins", params={"namespace": "trouble", "limit": 200}).json()["data"]
    warnings = {w for p in plugins for w in p["warnings"]}
    quotes.add("path warning", next(w for w in warnings if "absolute path" in w))
    quotes.add("internal warning", next(w for w in warnings if "internal network" in w))

    crash_after_start(env, quotes)
    cli_messages(env, quotes)
    edge_messages(env, quotes, reg_masks)
    quotes.check(page)


def crash_after_start(env: Env, quotes: Quotes) -> None:
    """A plugin that starts, then dies in its first hook call: 503 for the caller, then a restart."""
    base = env.root / "crash"
    text = (
        (ROOT / "examples/plugins/ip-filter/plugin.py")
        .read_text()
        .replace(
            "        ip = _client_ip(request.remote_addr)\n",
            "        import asyncio, os, sys\n"
            f"        print({PANIC!r}, file=sys.stderr, flush=True)\n"
            "        await asyncio.sleep(0.5)  # lets the SDK deliver the line to the host\n"
            "        os._exit(2)\n",
        )
    )
    plugin = executable(base / "plugins" / "my-plugin", text)
    slug = f"crash-{uuid.uuid4().hex[:6]}"
    answer = create(env.dev, {"name": slug, "command": f"file://{plugin}", "hook_type": "pre_auth"})
    assert answer.json()["status"] == "healthy", answer.text
    mask = Masker(base, slug)
    route = Route(env.dev, [{"plugin": slug}])
    failed = route.call("hello")
    assert failed.status_code == 503
    quotes.add("fail_closed", mask(failed.json()["error"]["message"]))

    def crashed() -> dict[str, Any] | None:
        with env.dev.client() as client:
            data = client.get(f"/api/v1/plugins/{slug}").json()
        return data if (data["last_error"] or "").startswith("plugin process") else None

    data = wait_until(crashed, timeout=10)
    assert data["status"] == "restarting"
    quotes.add("crash after start", mask(data["last_error"]))


def cli_messages(env: Env, quotes: Quotes) -> None:
    """What the CLI prints for a refused command, a bad allowlist and an edge without a token."""
    cli_env = {**os.environ, "SOLSTICE_URL": env.dev.url, "SOLSTICE_TOKEN": ADMIN_TOKEN}
    runs = {
        "cli refusal": (
            [sys.executable, "-m", "solstice", "plugins", "create", "--name", "x", "--command",
             "file://./my-plugin", "--hook-type", "pre_auth"],
            cli_env, 1,
        ),
        "bad allowlist": (
            [sys.executable, "-m", "solstice", "serve"],
            {**os.environ, "PLUGIN_COMMAND_ALLOWLIST": "plugins/*", "SOLSTICE_DATA_DIR": str(env.root / "x")}, 2,
        ),
        "edge without token": (
            [sys.executable, "-m", "solstice", "edge", "--control-url", env.dev.url],
            {**{k: v for k, v in os.environ.items() if k != "SOLSTICE_EDGE_TOKEN"},
             "SOLSTICE_DATA_DIR": str(env.root / "y")}, 2,
        ),
    }  # fmt: skip

    def run(item: tuple[str, tuple[list[str], dict[str, str], int]]) -> tuple[str, str]:
        name, (args, environ, code) = item
        done = subprocess.run(args, env=environ, capture_output=True, text=True, timeout=60)
        assert done.returncode == code, f"{name}: {done.returncode} {done.stderr}"
        return name, done.stderr.strip()

    with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
        for name, message in pool.map(run, runs.items()):
            quotes.add(name, message)


class Edge:
    """`solstice edge` as a process, stopped by PID."""

    def __init__(self, data_dir: Path, environ: dict[str, str], control_url: str) -> None:
        self.port = free_port()
        self.log_path = data_dir / f"edge-{self.port}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        environment = {
            **os.environ,
            "SOLSTICE_PORT": str(self.port),
            "SOLSTICE_DATA_DIR": str(data_dir),
            "SOLSTICE_LOG_FORMAT": "json",
            "SOLSTICE_EDGE_NAMESPACE": "edge-a",
            "OCI_PLUGINS_CACHE_DIR": str(data_dir / "oci"),
            **environ,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "solstice", "edge", "--control-url", control_url],
            env=environment, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def readyz(self) -> dict[str, Any] | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).json()
        except (httpx.TransportError, ValueError):
            return None

    def log_records(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> None:
        terminate(self.proc)
        self._log.close()


def edge_messages(env: Env, quotes: Quotes, reg_masks: dict[str, str]) -> None:
    """An edge's own policy and signature rules, then a stale configuration."""
    base = env.root / "edge"
    plugin = executable(
        base / "plugins" / "my-plugin", (ROOT / "examples/plugins/ip-filter/plugin.py").read_text()
    )
    with env.dev.client() as client:
        for slug, command in (("edge-file", f"file://{plugin}"),
                              ("edge-oci", f"oci://{env.registry.host}/plugins/my-plugin:v1")):  # fmt: skip
            body = {"name": slug, "command": command, "hook_type": "pre_auth", "namespace": "edge-a"}
            assert client.post("/api/v1/plugins", json=body).status_code == 201
    data_dir = base / "data"
    data_dir.mkdir()
    name = f"127_0_0_1_{env.registry.port}"
    own = {
        "PLUGIN_COMMAND_ALLOWLIST": f"{base}/approved/*,oci://{env.registry.host}/plugins/*",
        "SOLSTICE_EDGE_TOKEN": EDGE_TOKEN,
        f"OCI_PLUGINS_REGISTRY_{name}_USERNAME": env.registry.user or "",
        f"OCI_PLUGINS_REGISTRY_{name}_PASSWORD": env.registry.password or "",
    }
    edge = Edge(data_dir, own, env.dev.url)
    try:
        ready = wait_until(lambda: (r := edge.readyz()) and r["status"] == "ready" and r)
        assert ready["config"]["stale"] is False

        def failures() -> dict[str, str] | None:
            found = {r["plugin"]: r["error"] for r in edge.log_records() if r.get("event") == "plugin failed"}
            return found if {"edge-file", "edge-oci"} <= set(found) else None

        failed = wait_until(failures, timeout=20)
    finally:
        edge.stop()
    mask = Masker(base, "", reg_masks)
    quotes.add("edge allowlist", mask(failed["edge-file"]))
    quotes.add("edge signature", mask(failed["edge-oci"]))

    for case, environ, url in (
        ("stale: wrong token", {**own, "SOLSTICE_EDGE_TOKEN": "sol_not_a_token"}, env.dev.url),
        ("stale: control plane down", own, f"http://127.0.0.1:{free_port()}"),
    ):
        edge = Edge(data_dir, environ, url)
        try:
            ready = wait_until(lambda e=edge: (r := e.readyz()) and r["config"]["error"] and r)
        finally:
            edge.stop()
        assert ready["status"] == "ready" and ready["config"]["stale"] is True
        assert ready["config"]["source"] == "disk"
        quotes.add(case, ready["config"]["error"])


def test_troubleshooting_covers_the_reference_symptoms() -> None:
    headings = [line for line in read("troubleshooting.md").splitlines() if line.startswith("## ")]
    text = "\n".join(headings)
    for symptom in ("inactive", "Permission denied", "connection refused", "Failed to pull image", "crashes"):
        assert symptom in text, symptom
