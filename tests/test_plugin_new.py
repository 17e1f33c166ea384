"""`solstice plugin new`: a scaffolded project passes its own tests and runs under a real server."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from solstice.authoring.scaffold import new_project
from tests.gateway.conftest import Route
from tests.server import Server

SOLSTICE = [sys.executable, "-m", "solstice"]
BIN = Path(sys.executable).parent


def solstice(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SOLSTICE, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def tool(name: str) -> str:
    """A tool the test needs, from the venv or PATH; a missing one fails the test (never skips)."""
    path = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.fail(f"`{name}` is missing; run `make test` to install what the tests need", pytrace=False)
    return path


def test_new_project_passes_its_own_tests_lint_and_makefile(tmp_path: Path) -> None:
    done = solstice(
        "plugin", "new", "guard", "--hook", "on_response", "--hook", "pre_auth", "--dir", "work", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    project = tmp_path / "work" / "guard"
    assert done.stdout.splitlines()[0] == f"Created {project} (pre_auth, on_response):"
    for name in ("plugin.py", "tests/test_plugin.py", "Makefile", "README.md", ".gitignore"):
        assert f"  {name}\n" in done.stdout
        assert (project / name).is_file()
    assert "make build" in done.stdout and "Next steps:" in done.stdout
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["guard"]  # no staging left over

    plugin = project / "plugin.py"
    assert plugin.stat().st_mode & stat.S_IXUSR
    source = plugin.read_text()
    assert source.startswith("#!/usr/bin/env python3\n")
    assert "async def pre_auth(" in source and "async def on_response(" in source
    assert "async def post_auth(" not in source and "config_schema = {" in source

    # The project's own tests, through its Makefile, with this interpreter.
    tested = subprocess.run(
        [tool("make"), "--no-print-directory", "test", f"PYTHON={sys.executable}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "6 passed" in tested.stdout

    ruff = tool("ruff")
    linted = subprocess.run(
        [ruff, "check", "--isolated", "--line-length", "110", "--select", "E,F,W,I,B,UP,SIM,ASYNC", "."],
        cwd=project, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert linted.returncode == 0, linted.stdout
    formatted = subprocess.run(
        [ruff, "format", "--isolated", "--line-length", "110", "--check", "."],
        cwd=project, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert formatted.returncode == 0, formatted.stdout

    # The pipeline's commands, as make would run them (the build itself is tests/test_plugin_build.py's).
    planned = subprocess.run(
        [tool("make"), "--no-print-directory", "-n", "push", "REGISTRY=registry.example.com", "VERSION=1.2.3"],
        cwd=project, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    steps = planned.stdout
    assert "solstice plugin build plugin.py -o dist/guard\n" in steps
    assert "sha256sum guard > guard.sha256" in steps
    assert steps.rstrip().endswith(
        "solstice oci push dist/guard oci://registry.example.com/plugins/guard:1.2.3"
    )
    assert steps.index("plugin build") < steps.index("sha256sum") < steps.index("oci push")
    readme = (project / "README.md").read_text()
    for text in (
        "solstice plugin dev",
        "file://",
        "--listen",
        "grpc://",
        "oci://registry.example.com/plugins/guard",
    ):
        assert text in readme


def test_scaffolded_plugin_runs_under_a_real_server(tmp_path: Path) -> None:
    made = new_project("guard", ["pre_auth", "on_response"], tmp_path)
    command = f"file://{made.directory / 'plugin.py'}"
    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            body = {
                "name": "guard", "command": command, "hook_types": ["pre_auth", "on_response"],
                "config": {"max_body_bytes": 200, "response_headers": {"X-Guarded": "yes"}},
            }  # fmt: skip
            created = client.post("/api/v1/plugins", json=body)
            assert created.status_code == 201, created.text
            plugin = created.json()
            assert plugin["status"] == "healthy", plugin
            # Only the path policy's note (a tmp path is outside the usual plugin directories).
            assert not [w for w in plugin["warnings"] if "SECURITY WARNING" not in w], plugin
            # Registered for a hook it lacks, it says which hooks it reports (through GetInfo).
            wrong = {"name": "guard-auth", "command": command, "hook_types": ["pre_auth", "auth"]}
            warned = client.post("/api/v1/plugins", json=wrong).json()
            assert (
                "plugin guard-auth is registered for auth but reports only pre_auth, on_response; "
                "auth calls will fail"
            ) in warned["warnings"], warned
            # The schema it reports is enforced by the server.
            refused = client.post(
                "/api/v1/plugins", json={**body, "name": "g2", "config": {"max_body_bytes": "x"}}
            )
            assert refused.json()["status"] == "failed", refused.text
            assert refused.json()["last_error"] == (
                "config of plugin g2 does not match the plugin's schema at /max_body_bytes: "
                "'x' is not of type 'integer'"
            )
            assert client.get("/api/v1/plugins/guard/health").json()["status"] == "healthy"

        route = Route(server, chain=[{"plugin": "guard"}])
        small = route.call()
        assert small.status_code == 200, small.text
        assert small.headers["X-Guarded"] == "yes"
        large = route.call(json={"model": "m", "messages": [{"role": "user", "content": "x" * 300}]})
        assert large.status_code == 413, large.text
        assert "over 200 bytes" in large.json()["error"]["message"]
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["Bad_Name"],
            "plugin name 'Bad_Name' is not a slug; use lowercase letters, digits and single hyphens, starting "
            "and ending with a letter or digit, at most 100 characters (e.g. my-plugin)",
        ),
        (
            ["guard", "--hook", "pre_auth", "--hook", "preauth"],
            "unknown hook 'preauth'; valid hooks: pre_auth, auth, post_auth, on_response, data_collection, custom_endpoint, scheduled_task, object_hooks, agent",
        ),
        (["taken"], "directory {dir}/taken already exists and is not empty; choose another NAME or --dir"),
    ],
    ids=["bad-name", "bad-hook", "existing-dir"],
)
def test_errors_are_one_line_and_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine\n")
    done = solstice("plugin", "new", *args, "--dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"solstice: {message.format(dir=tmp_path)}\n"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "taken",
        "taken/keep.txt",
    ]
    if "taken" in args:
        return
    # A --dir that does not exist yet is not created either.
    again = solstice("plugin", "new", *args, "--dir", str(tmp_path / "new" / "parent"), cwd=tmp_path)
    assert again.returncode == 1
    assert not (tmp_path / "new").exists()


def test_an_empty_directory_is_used_and_gets_every_hook(tmp_path: Path) -> None:
    (tmp_path / "plugin").mkdir()
    made = new_project(
        "plugin",
        [
            "agent",
            "object_hooks",
            "scheduled_task",
            "data_collection",
            "auth",
            "post_auth",
            "pre_auth",
            "on_response",
            "auth",
        ],
        tmp_path,
    )
    assert made.hooks == (
        "pre_auth",
        "auth",
        "post_auth",
        "on_response",
        "data_collection",
        "scheduled_task",
        "object_hooks",
        "agent",
    )
    source = (made.directory / "plugin.py").read_text()
    assert "class PluginPlugin(Plugin):" in source  # not Plugin, the SDK's base class
    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=made.directory, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "17 passed" in tested.stdout


def test_an_endpoint_project_passes_its_tests_and_serves_its_routes(tmp_path: Path) -> None:
    done = solstice("plugin", "new", "greeter", "--hook", "custom_endpoint", "--dir", "work", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    project = tmp_path / "work" / "greeter"
    tested = subprocess.run(
        [tool("make"), "--no-print-directory", "test", f"PYTHON={sys.executable}"],
        cwd=project, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert tested.returncode == 0 and "5 passed" in tested.stdout, tested.stdout + tested.stderr
    for check in (["check", "--select", "E,F,W,I,B,UP,SIM,ASYNC"], ["format", "--check"]):
        linted = subprocess.run(
            [tool("ruff"), check[0], "--isolated", "--line-length", "110", *check[1:], "."],
            cwd=project, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert linted.returncode == 0, linted.stdout
    assert "custom_endpoint" in (project / "README.md").read_text()

    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            created = client.post("/api/v1/plugins", json={
                "name": "greeter", "command": f"file://{project / 'plugin.py'}",
                "hook_types": ["custom_endpoint"], "config": {"greeting": "welcome"},
            })  # fmt: skip
            assert created.status_code == 201 and created.json()["status"] == "healthy", created.text
            assert [r["path"] for r in created.json()["routes"]] == ["/hello/{name}", "/countdown/{n}"]
            assert client.get("/plugins/greeter/hello/ada").json() == {"message": "welcome, ada"}
            counted = client.get("/plugins/greeter/countdown/2")
            assert counted.text == "data: 2\n\ndata: 1\n\ndata: 0\n\n"
            assert client.get("/plugins/greeter/countdown/x").status_code == 400
    finally:
        server.stop()
