"""The gateway end to end: the app in this process, real plugins (Python SDK and Go), the mock upstream."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

from tests.conftest import EXAMPLES, wait_until
from tests.gateway.conftest import Route, echo_headers, plugin
from tests.inprocess import InProcess


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_plain_call_and_openai_style_errors(gw: InProcess) -> None:
    route = Route(gw)
    ok = route.call()
    assert ok.status_code == 200
    assert ok.json()["choices"][0]["message"]["content"] == "echo: hello there"
    assert ok.json()["usage"]["total_tokens"] == 4
    assert ok.headers["x-request-id"]
    with gw.client(token="") as anonymous:
        missing = anonymous.post("/llm/no-such-llm/v1/chat/completions", json={})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert route.call(key="sk-sol-wrong").status_code == 401
    assert route.call(key="").json()["error"]["message"].startswith("missing API key")
    with gw.client(token=route.key) as client:
        bad_json = client.post(
            f"/llm/{route.slug}/v1/chat/completions",
            content=b"{nope",
            headers={"Content-Type": "application/json"},
        )
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
    too_big = route.call(json={"messages": [{"role": "user", "content": "x" * 70000}]})
    assert too_big.status_code == 413
    other = Route(gw)
    assert other.call(key=route.key).status_code == 403
    with gw.client() as client:
        client.patch(f"/api/v1/llms/{route.slug}", json={"is_active": False})
    assert route.call().status_code == 503


def test_traceparent_reaches_the_plugin_context(gw: InProcess) -> None:
    tagger = plugin(gw, "post_auth")
    headers = echo_headers(
        Route(gw, chain=[{"plugin": tagger}]).call(
            "v1/echo", headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        )
    )
    assert headers["x-seen-traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert headers["traceparent"] == headers["x-seen-traceparent"], "and is forwarded upstream"


def test_request_id_and_traceparent_reach_plugins(gw: InProcess) -> None:
    enricher = plugin(gw, "post_auth", command=f"file://{EXAMPLES / 'header-enricher' / 'plugin.py'}")
    route = Route(gw, chain=[{"plugin": enricher}])
    headers = echo_headers(
        route.call("v1/echo", headers={"X-Request-ID": "req-42", "traceparent": "00-abc-def-01"})
    )
    assert headers["x-request-id"] == "req-42"
    assert headers["x-solstice-app"] == str(route.app_id)
    assert "authorization" not in headers, "the app key never goes upstream"


def test_chain_of_three_modifying_plugins_in_order(gw: InProcess) -> None:
    first = plugin(gw, "post_auth", config={"header": "X-Step", "value": "one"})
    second = plugin(gw, "post_auth", config={"header": "X-Second", "value": "two"})
    third = plugin(gw, "post_auth", config={"header": "X-Step", "value": "three"})
    route = Route(gw, chain=[{"plugin": first}, {"plugin": second}, {"plugin": third}])
    headers = echo_headers(route.call("v1/echo"))
    assert headers["x-step"] == "three", "later plugins see and override earlier changes"
    assert headers["x-second"] == "two"
    assert headers["x-seen-llm"] == route.slug
    # Metadata set by the first two plugins reached the third.
    assert headers["x-seen-metadata"] == "x-second=two,x-step=one"


def test_per_llm_config_override(gw: InProcess) -> None:
    tagger = plugin(gw, "post_auth", config={"header": "X-Tag", "value": "base"})
    plain = Route(gw, chain=[{"plugin": tagger}])
    special = Route(gw, chain=[{"plugin": tagger, "config_override": {"value": "special"}}])
    assert echo_headers(plain.call("v1/echo"))["x-tag"] == "base"
    assert echo_headers(special.call("v1/echo"))["x-tag"] == "special"


def test_block_by_pre_auth_plugins_python_and_go(gw: InProcess, go_plugin: Path) -> None:
    ip_filter = plugin(
        gw,
        "pre_auth",
        command=f"file://{EXAMPLES / 'ip-filter' / 'plugin.py'}",
        config={"deny": ["127.0.0.0/8"]},
    )
    blocked = Route(gw, chain=[{"plugin": ip_filter}]).call()
    assert blocked.status_code == 403
    assert "127.0.0.1 is denied" in blocked.json()["error"]["message"]
    guard = plugin(gw, "pre_auth", command=f"file://{go_plugin}", config={"blocked_words": ["forbidden"]})
    route = Route(gw, chain=[{"plugin": guard}])
    assert route.call().status_code == 200
    refused = route.call(json={"messages": [{"role": "user", "content": "a FORBIDDEN word"}]})
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/json"


def test_auth_plugin_accepts_rejects_and_abstains(gw: InProcess) -> None:
    auth = plugin(gw, "auth", config={"app_id": "99"})
    tagger = plugin(gw, "post_auth", config={"header": "X-Tag", "value": "t"})
    route = Route(gw, chain=[{"plugin": auth}, {"plugin": tagger}])
    accepted = route.call("v1/echo", key="good-key")
    assert accepted.status_code == 200
    rejected = route.call(key="bad-key")
    assert rejected.status_code == 401 and rejected.json()["error"]["message"] == "testbed rejects this key"
    nobody = route.call(key=route.key)
    assert nobody.status_code == 401, "with an auth plugin, the built-in key check does not run"


def test_timeouts_follow_each_failure_policy(gw: InProcess) -> None:
    slow = plugin(gw, "post_auth", config={"slow_ms": 1000}, timeout_ms=100)
    closed = Route(gw, chain=[{"plugin": slow}]).call()
    assert closed.status_code == 503
    assert closed.json()["error"]["code"] == "plugin_failed"
    assert f"plugin {slow} failed during post_auth" in closed.json()["error"]["message"]
    assert Route(gw, chain=[{"plugin": slow, "failure_policy": "fail_open"}]).call().status_code == 200
    faster = Route(gw, chain=[{"plugin": slow, "timeout_ms": 3000}]).call()
    assert faster.status_code == 200, "a per-LLM timeout overrides the plugin's"


def test_on_response_rewrites_buffered_and_streamed_answers(gw: InProcess, record_file: Path) -> None:
    tagger = plugin(
        gw,
        "on_response",
        config={"response_header": "seen", "upper_chunks": True, "record_file": str(record_file)},
    )
    route = Route(gw, chain=[{"plugin": tagger}])
    buffered = route.call()
    assert buffered.headers["x-on-response"] == "seen"
    streamed = route.call(json={"stream": True, "messages": [{"role": "user", "content": "hello there"}]})
    assert streamed.headers["content-type"].startswith("text/event-stream")
    body = streamed.content
    assert b'"ECHO:"' in body and b"DATA: [DONE]" in body, body[:200]
    wait_until(lambda: "stream-end" in _text(record_file), 10, what="the completion call after the stream")


def test_data_collection_receives_usage(gw: InProcess, record_file: Path) -> None:
    collector = plugin(gw, "data_collection", config={"record_file": str(record_file)})
    route = Route(gw, chain=[{"plugin": collector}])
    for _ in range(3):
        assert route.call().status_code == 200
    assert (
        route.call(
            json={"stream": True, "messages": [{"role": "user", "content": "one two three"}]}
        ).status_code
        == 200
    )
    wait_until(lambda: _text(record_file).count("record") >= 4, 10, what="four records")
    lines = record_file.read_text().splitlines()
    assert lines.count(f"record status=200 model=m prompt=2 completion=2 total=4 app={route.app_id}") == 3
    assert (
        f"record status=200 model=solstice-mock-1 prompt=3 completion=3 total=6 app={route.app_id}" in lines
    )


def test_plugin_killed_during_traffic_recovers(gw: InProcess) -> None:
    tagger = plugin(gw, "post_auth", config={"header": "X-Tag", "value": "t"})
    route = Route(gw, chain=[{"plugin": tagger}])
    with gw.client() as client:
        pid = client.get(f"/api/v1/plugins/{tagger}/health").json()["pid"]
    os.kill(pid, signal.SIGKILL)
    codes = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        codes.append(route.call().status_code)
        if codes[-1] == 200 and len(codes) > 1:
            break
    assert set(codes) <= {200, 503}, codes
    assert codes[-1] == 200
    with gw.client() as client:
        assert client.get(f"/api/v1/plugins/{tagger}/health").json()["restarts"] == 1


def test_reload_during_a_stream_of_requests_fails_none(gw: InProcess) -> None:
    tagger = plugin(gw, ["pre_auth", "post_auth"], config={"header": "X-Tag", "value": "t"})
    route = Route(gw, chain=[{"plugin": tagger}])
    stop = threading.Event()
    codes: list[int] = []

    def traffic() -> None:
        with gw.client(token=route.key) as client:
            while not stop.is_set():
                response = client.post(
                    f"/llm/{route.slug}/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": "hi"}]},
                )
                codes.append(response.status_code)

    workers = [threading.Thread(target=traffic) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        with gw.client() as client:
            for _ in range(3):
                time.sleep(0.3)
                assert client.post(f"/api/v1/plugins/{tagger}/reload").status_code == 200
        time.sleep(0.3)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert len(codes) > 20
    assert set(codes) == {200}, json.dumps(sorted(set(codes)))


def test_openai_endpoints_and_key_revocation(gw: InProcess) -> None:
    route = Route(gw)
    completion = route.call("v1/completions", json={"model": "m", "prompt": "say this"})
    assert completion.json()["choices"][0]["text"] == "echo: say this"
    embedding = route.call("v1/embeddings", json={"model": "m", "input": "vector me"})
    assert len(embedding.json()["data"][0]["embedding"]) == 16
    with gw.client(token=route.key) as client:
        models = client.get(f"/llm/{route.slug}/v1/models")
    assert models.json()["data"][0]["id"] == "solstice-mock-1"
    with gw.client() as client:
        app = client.get(f"/api/v1/apps/{route.app_id}").json()
        assert all("key" not in k for k in app["keys"])
        extra = client.post(f"/api/v1/apps/{route.app_id}/keys", json={"name": "second"}).json()
        assert route.call(key=extra["key"]).status_code == 200
        assert client.delete(f"/api/v1/apps/{route.app_id}/keys/{extra['id']}").json()["revoked_at"]
    assert route.call(key=extra["key"]).status_code == 401
    assert route.call().status_code == 200, "the other key still works"


def test_hop_by_hop_headers_are_not_forwarded(gw: InProcess) -> None:
    headers = echo_headers(
        Route(gw).call(
            "v1/echo",
            headers={
                "Connection": "keep-alive, X-Secret-Hop",
                "X-Secret-Hop": "h",
                "Proxy-Authorization": "x",
                "X-Kept": "1",
            },
        )
    )
    assert "proxy-authorization" not in headers and "connection" not in headers
    assert "x-secret-hop" not in headers, "headers named in Connection are hop-by-hop too"
    assert headers["x-kept"] == "1"


def test_auth_plugin_answers_obey_the_rules_of_registered_apps(gw: InProcess) -> None:
    route = Route(gw)
    other = Route(gw)
    with gw.client() as client:
        idle = client.post(
            "/api/v1/apps", json={"name": "idle", "llms": [route.slug], "is_active": False}
        ).json()
    for app_id, status in ((idle["id"], 401), (other.app_id, 403), (route.app_id, 200), (987654, 200)):
        auth = plugin(gw, "auth", config={"app_id": str(app_id)})
        with gw.client() as client:
            client.put(f"/api/v1/llms/{route.slug}/plugins", json={"plugins": [{"plugin": auth}]})
        assert route.call(key="good-key").status_code == status, app_id


def test_deleting_an_llm_removes_it_from_apps(gw: InProcess) -> None:
    route = Route(gw)
    with gw.client() as client:
        assert client.delete(f"/api/v1/llms/{route.slug}").status_code == 204
        assert client.get(f"/api/v1/apps/{route.app_id}").json()["llm_ids"] == []
        assert (
            client.post(
                "/api/v1/llms", json={"name": "replacement", "slug": f"{route.slug}-new", "vendor": "mock"}
            ).status_code
            == 201
        )
        assert (
            "already exists"
            in client.post(
                "/api/v1/llms", json={"name": "x", "slug": f"{route.slug}-new", "vendor": "mock"}
            ).json()["detail"]
        )
    with gw.client(token=route.key) as client:
        denied = client.post(f"/llm/{route.slug}-new/v1/chat/completions", json={})
    assert denied.status_code == 403


def test_concurrent_chain_changes_sharing_a_plugin_keep_both_overrides(gw: InProcess) -> None:
    from concurrent.futures import ThreadPoolExecutor

    tagger = plugin(gw, "post_auth", config={"header": "X-Tag", "value": "base"})
    first, second = Route(gw), Route(gw)

    def put(route: Route, value: str) -> int:
        with gw.client() as client:
            body = {"plugins": [{"plugin": tagger, "config_override": {"value": value}}]}
            return client.put(f"/api/v1/llms/{route.slug}/plugins", json=body).status_code

    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(put, (first, second), ("one", "two")))
    assert codes == [200, 200]
    assert echo_headers(first.call("v1/echo"))["x-tag"] == "one"
    assert echo_headers(second.call("v1/echo"))["x-tag"] == "two"
