"""What a gateway client sees when a plugin fails or answers nonsense: a plain OpenAI-style error,
never the plugin's path or output; the detail is in the log and in the admin API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until
from tests.gateway.conftest import Route, plugin
from tests.inprocess import InProcess, app_settings

HOSTILE = Path(__file__).resolve().parent.parent / "plugins" / "hostile.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    # A crashed plugin stays down for the whole test: its restart waits a minute.
    settings = app_settings(
        tmp_path_factory.mktemp("errors"), plugin_restart_backoff=60, plugin_restart_backoff_max=60
    )
    running = InProcess(settings).start()
    yield running
    running.stop()


def hostile(server: InProcess, hooks: list[str], config: dict[str, Any], **fields: Any) -> str:
    return plugin(server, hooks, command=f"file://{HOSTILE}", config=config, **fields)


def _assert_plain_plugin_error(answer: httpx.Response, slug: str, hook: str) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == "plugin_failed" and error["type"] == "service_unavailable"
    assert error["message"] == (
        f"plugin {slug} failed during {hook} and its failure policy is fail_closed; "
        "the request was not forwarded"
    )


def test_a_dead_fail_closed_plugin_is_named_but_its_output_is_not(server: InProcess) -> None:
    slug = hostile(server, ["pre_auth"], {"crash": True})
    route = Route(server, chain=[{"plugin": slug}])
    answers = [route.call(), route.call()]  # the call that kills it, then one while it is down
    for answer in answers:
        _assert_plain_plugin_error(answer, slug, "pre_auth")
        for leak in ("Traceback", "internals", str(HOSTILE), "exited", "last output"):
            assert leak not in answer.text

    def last_error() -> str:
        with server.client() as client:
            return str(client.get(f"/api/v1/plugins/{slug}").json()["last_error"] or "")

    # The admin API keeps the detail, once the host has seen the exit (a call can fail a moment before).
    wait_until(lambda: "internals" in last_error(), 10, what="the exit in last_error")
    wait_until(lambda: "request refused (fail_closed)" in server.log(), 10, what="the refusal in the log")
    assert f'"plugin": "{slug}"' in server.log() and "internals" in server.log()


BAD_HEADERS = [
    ("X-Split", "a\r\nX-Injected: 1"),
    ("X-Newline", "a\nb"),
    ("X-Del", "a\x7fb"),
    ("Bad Name", "1"),
    ("X-Colon:", "1"),
    ("", "1"),
    ("X-Wide", "snowman \u2603"),
]


@pytest.mark.parametrize(("name", "value"), BAD_HEADERS, ids=[repr(n) for n, _ in BAD_HEADERS])
def test_a_bad_response_header_from_a_plugin_is_a_plugin_error(
    server: InProcess, name: str, value: str
) -> None:
    slug = hostile(server, ["on_response"], {"response_headers": [[name, value]]})
    closed = Route(server, chain=[{"plugin": slug, "failure_policy": "fail_closed"}]).call()
    _assert_plain_plugin_error(closed, slug, "on_response")
    assert "X-Injected" not in closed.headers
    opened = Route(server, chain=[{"plugin": slug, "failure_policy": "fail_open"}]).call()
    assert opened.status_code == 200, opened.text
    assert name not in opened.headers or not name
    log = server.log()
    assert f"plugin {slug} answered on_response with an invalid header {name!r}" in log
    assert "X-Injected" not in log  # the value is not logged


def test_a_bad_block_from_a_plugin_is_a_plugin_error(server: InProcess) -> None:
    for block in ({"status": 99}, {"status": 700}, {"status": 403, "headers": [["X-Split", "a\r\nb: c"]]}):
        slug = hostile(server, ["pre_auth"], {"block": block})
        _assert_plain_plugin_error(Route(server, chain=[{"plugin": slug}]).call(), slug, "pre_auth")
    fine = hostile(server, ["pre_auth"], {"block": {"status": 429, "headers": [["Retry-After", "5"]]}})
    answer = Route(server, chain=[{"plugin": fine}]).call()
    assert answer.status_code == 429 and answer.headers["retry-after"] == "5"
