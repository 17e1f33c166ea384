"""`solstice tokens create` takes the token's name as docs/edge.md shows it, or as `--name`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.server import Server


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("cli-tokens")).wait_ready()
    yield server
    server.stop()


def create(api: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """`solstice tokens create ARGS` against the server, as an admin."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SOLSTICE_")}
    env |= {"SOLSTICE_URL": api.url, "SOLSTICE_TOKEN": api.token}
    return subprocess.run(
        [sys.executable, "-m", "solstice", "tokens", "create", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
    )


def created(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def test_name_as_argument_as_the_docs_show(api: Server) -> None:
    name = f"edge-{uuid.uuid4().hex[:6]}"
    token = created(create(api, name, "--scope", "edge", "--json"))
    assert (token["name"], token["scope"]) == (name, "edge")


def test_name_as_option_still_works(api: Server) -> None:
    name = f"reader-{uuid.uuid4().hex[:6]}"
    assert created(create(api, "--name", name, "--json"))["name"] == name


def test_no_name_or_two_names_is_one_line(api: Server) -> None:
    missing = create(api, "--scope", "edge")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == "solstice: a token needs a name; run solstice tokens create NAME --scope SCOPE\n"
    both = create(api, "first", "--name", "second")
    assert both.returncode == 1 and both.stdout == ""
    assert both.stderr == (
        "solstice: the token's name is given twice ('first' and --name 'second'); give it once, as NAME\n"
    )
