"""Agent plugins at /agents/{slug}/chat: streamed typed chunks through the real gateway, on a control
plane and on an edge, and every way a turn can go wrong."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLES, ROOT, wait_until
from tests.server import Server
from tests.test_edge import Edge

AGENTS = ROOT / "tests" / "plugins" / "agents.py"
PLANNER = EXAMPLES / "planner-agent" / "plugin.py"


def events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any], float]]:
    """The server-sent events of a response as they arrive: name, data, and when it came."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: ")), time.monotonic()


Event = tuple[str, dict[str, Any], float]


def chat(url: str, key: str, slug: str, body: dict[str, Any]) -> tuple[httpx.Response, list[Event], str]:
    """POST a chat turn; the response, its events (empty unless 200) and everything it sent."""
    seen: list[str] = []

    def lines(response: httpx.Response) -> Iterator[str]:
        for line in response.iter_lines():
            seen.append(line)
            yield line

    with httpx.stream(
        "POST", f"{url}/agents/{slug}/chat", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as response:
        if response.status_code != 200:
            response.read()
            return response, [], response.text
        got = list(events(lines(response)))
    return response, got, "\n".join(seen)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    """A control plane with the agents test plugin and the planner, an app allowed to use both,
    and another app allowed neither; the keys of both apps."""
    running = Server(tmp_path_factory.mktemp("agents"), env={"SOLSTICE_PLUGIN_ENDPOINT_STREAM_TIMEOUT": "2"})
    running.wait_ready()
    with running.client() as client:
        client.post("/api/v1/llms", json={"name": "mock", "vendor": "mock"})
        # A pre_auth plugin on the LLM: the agent's own LLM calls must pass it like any app's.
        client.post(
            "/api/v1/plugins",
            json={
                "name": "counter",
                "command": f"file://{ROOT}/tests/plugins/services.py",
                "hook_types": ["pre_auth", "custom_endpoint"],
            },
        )
        client.post("/api/v1/plugins/counter/scopes/approve", json={"scopes": ["kv.readwrite"]})
        client.put("/api/v1/llms/mock/plugins", json={"plugins": [{"plugin": "counter"}]})
        for slug, command in (("agents", AGENTS), ("planner", PLANNER)):
            made = client.post(
                "/api/v1/plugins", json={"name": slug, "command": f"file://{command}", "hook_type": "agent"}
            )
            assert made.status_code == 201 and made.json()["status"] == "healthy", made.text
            client.post(f"/api/v1/plugins/{slug}/scopes/approve", json={"scopes": ["llms.call"]})
        allowed = client.post(
            "/api/v1/apps", json={"name": "ui", "llms": ["mock"], "agents": ["agents", "planner"]}
        )
        assert allowed.json()["agents"] == ["agents", "planner"], allowed.text
        other = client.post("/api/v1/apps", json={"name": "other", "llms": ["mock"]})
    yield running, allowed.json()["key"], other.json()["key"]
    running.stop()


def test_chunks_reach_the_client_as_the_agent_makes_them(server: tuple[Server, str, str]) -> None:
    running, key, _ = server
    response, got, _ = chat(running.url, key, "agents", {"message": "tools please"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert [(name, data["content"]) for name, data, _ in got] == [
        ("thinking", "echoing"),
        ("tool_call", "clock"),
        ("tool_result", "clock"),
        ("content", "tools "),
        ("content", "please"),
        ("done", ""),
    ]
    assert got[1][1]["metadata"] == {"name": "clock", "arguments": {"zone": "UTC"}}
    assert got[4][1]["metadata"] == {"final": True}
    # The first half came 0.3 s before the second: relayed as made, not buffered.
    assert got[4][2] - got[3][2] > 0.2
    assert got[-1][1]["session_id"] == response.headers["x-session-id"]


def test_the_caller_keeps_the_conversation(server: tuple[Server, str, str]) -> None:
    running, key, _ = server
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    response, got, _ = chat(
        running.url, key, "agents", {"message": "who", "session_id": "s-1", "history": history}
    )
    assert response.headers["x-session-id"] == "s-1"
    assert json.loads(got[0][1]["content"]) == {
        "session": "s-1",
        "app": "ui",
        "history": [["user", "hi"], ["assistant", "hello"]],
    }


def test_an_agent_may_call_only_the_llms_of_the_app_it_answers(server: tuple[Server, str, str]) -> None:
    running, key, _ = server
    with running.client() as client:
        client.post("/api/v1/llms", json={"name": "private", "vendor": "mock"})
    _, got, _ = chat(running.url, key, "agents", {"message": "ask mock"})
    assert got[0][1]["content"].startswith("echo:"), got
    _, got, _ = chat(running.url, key, "agents", {"message": "ask private"})
    assert got[-1][:2] == (
        "error",
        {
            "content": "PERMISSION_DENIED: app 'ui' may not use LLM private, so agent agents may not call it "
            "for this chat; add the LLM to the app's llms"
        },
    )


def test_a_turn_loses_its_llms_when_its_app_loses_the_agent(server: tuple[Server, str, str]) -> None:
    running, _, _ = server
    with running.client() as client:
        fleeting = client.post(
            "/api/v1/apps", json={"name": "fleeting", "llms": ["mock"], "agents": ["agents"]}
        ).json()
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(chat, running.url, fleeting["key"], "agents", {"message": "later 1.5 mock"})
        time.sleep(0.5)
        with running.client() as client:
            assert (
                client.patch(f"/api/v1/apps/{fleeting['id']}", json={"is_active": False}).status_code == 200
            )
        _, got, _ = answer.result()
    assert got[-1][0] == "error" and "may no longer use it" in got[-1][1]["content"], got


def test_a_client_that_leaves_before_the_answer_stops_the_agent(
    server: tuple[Server, str, str], tmp_path: Path
) -> None:
    running, key, _ = server
    marker = tmp_path / "cancelled"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{running.url}/agents/agents/chat",
            json={"message": f"slowfirst {marker}"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=1,
        )
    wait_until(marker.exists, 10, running.log, what="the agent to be cancelled")
    metrics = httpx.get(f"{running.url}/metrics").text
    assert 'solstice_agent_chats_total{outcome="disconnected",plugin="agents"}' in metrics


def test_metadata_json_clients_cannot_read_is_refused(server: tuple[Server, str, str]) -> None:
    running, key, _ = server
    _, got, text = chat(running.url, key, "agents", {"message": "nan"})
    assert got[-1][:2] == ("error", {"content": "agent agents sent a malformed answer"})
    assert "NaN" not in text


def test_the_planner_calls_llms_through_their_hooks(server: tuple[Server, str, str]) -> None:
    running, key, _ = server
    with running.client() as client:
        before = client.get("/plugins/counter/kv/pre_auth-calls").json()["result"]
    response, got, _ = chat(running.url, key, "planner", {"message": "hello there"})
    assert response.status_code == 200
    assert [name for name, _, _ in got] == ["thinking", "content", "content", "content", "done"]
    assert "".join(data["content"] for name, data, _ in got if name == "content") == "echo: hello there"
    with running.client() as client:
        after = client.get("/plugins/counter/kv/pre_auth-calls").json()["result"]
    assert int(after) - int(before or 0) == 2  # the plan and the answer each passed pre_auth
    with running.client() as client:
        # Made for the app's chat turn: the hooks see the app.
        assert client.get("/plugins/counter/kv/pre_auth-app").json()["result"] == "ui"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("hang", "agent agents did not finish within 2 s"),
        ("raise", "the agent failed to answer; try again later"),
        ("no-done", "agent agents ended its answer without finishing it"),
        ("garbage", "agent agents sent a malformed answer"),
    ],
)
def test_an_answer_that_goes_wrong_ends_with_one_error_event(
    server: tuple[Server, str, str], message: str, error: str
) -> None:
    running, key, _ = server
    response, got, text = chat(running.url, key, "agents", {"message": message})
    assert response.status_code == 200
    assert got[-1][:2] == ("error", {"content": error})
    assert [name for name, _, _ in got].count("error") == 1 and "done" not in [name for name, _, _ in got]
    assert "/secret/path" not in text and "exploded" not in text


def test_refusals_are_one_sentence(server: tuple[Server, str, str]) -> None:
    running, key, other = server
    cases = [
        ("agents", "", {"message": "x"}, 401, "missing API key"),
        (
            "agents",
            other,
            {"message": "x"},
            403,
            "app 'other' may not use agent agents; add it to the app's agents",
        ),
        ("nobody", key, {"message": "x"}, 404, "no active agent 'nobody'"),
        ("agents", key, {"message": ""}, 400, "message must be a non-empty string"),
        (
            "agents",
            key,
            {"message": "x", "history": [{"role": "system", "content": "x"}]},
            400,
            "history[0] must be",
        ),
        ("agents", key, {"message": "x", "session_id": "a b"}, 400, "session_id must be"),
        ("agents", key, {"message": "x", "extra": 1}, 400, "unknown field 'extra'"),
    ]
    for slug, credential, body, status, text in cases:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        answered = httpx.post(f"{running.url}/agents/{slug}/chat", json=body, headers=headers)
        assert answered.status_code == status, (body, answered.text)
        assert text in answered.json()["error"]["message"]
    surrogate = httpx.post(
        f"{running.url}/agents/agents/chat",
        content=b'{"message": "x \\ud800"}',
        headers={"Authorization": f"Bearer {key}"},
    )
    assert surrogate.status_code == 400 and "lone surrogate" in surrogate.json()["error"]["message"]
    not_json = httpx.post(
        f"{running.url}/agents/agents/chat", content=b"{", headers={"Authorization": f"Bearer {key}"}
    )
    assert not_json.status_code == 400
    with running.client() as client:
        refused = client.post("/api/v1/apps", json={"name": "x", "agents": ["ghost"]})
        assert refused.status_code == 422 and "no plugin 'ghost' to chat with" in refused.json()["detail"]
        not_agent = client.post("/api/v1/apps", json={"name": "x", "agents": ["counter"]})
        assert "plugin counter is not registered for agent" in not_agent.json()["detail"]
        planner_id = client.get("/api/v1/plugins/planner").json()["id"]
        by_id = client.post("/api/v1/apps", json={"name": "y", "agents": [str(planner_id), "planner"]})
        assert by_id.json()["agents"] == ["planner"]


AGENT_YAML = """
plugins:
  - slug: planner
    command: file://{plugin}
    hook_types: [agent]
    scopes: [llms.call]
llms:
  - slug: mock
    vendor: mock
apps:
  - name: ui
    llms: [mock]
    agents: [planner]
    keys_env: [UI_KEY]
"""


def test_an_edge_streams_an_agents_answer(tmp_path: Path) -> None:
    config = tmp_path / "plugins.yaml"
    config.write_text(AGENT_YAML.format(plugin=PLANNER))
    edge = Edge(tmp_path / "edge", None, "", "", env={"UI_KEY": "sk-ui-123"}, config=config).start()
    try:
        assert edge.ready() is not None
        response, got, _ = chat(edge.url, "sk-ui-123", "planner", {"message": "hello there"})
        assert response.status_code == 200, response.text
        assert [name for name, _, _ in got] == ["thinking", "content", "content", "content", "done"]
        assert "".join(data["content"] for name, data, _ in got if name == "content") == "echo: hello there"
    finally:
        edge.stop()
