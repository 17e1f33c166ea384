"""The host service API: scopes requested, approved and refused, each plugin's KV data, LLMs and apps
read, events published; a real plugin process (tests/plugins/services.py) calling through its endpoints."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx

from solstice.protocol import pb, pb_grpc
from tests.conftest import ROOT, TESTBED, Standalone, wait_until
from tests.gateway.conftest import Route, plugin
from tests.inprocess import InProcess, app_settings

SERVICES = ROOT / "tests" / "plugins" / "services.py"
COMMAND = f"file://{SERVICES}"
EVERYTHING = ["kv.readwrite", "llms.read", "apps.read", "events.publish", "llms.call"]


def call(gw: InProcess, slug: str, path: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
    with gw.client(token="") as client:
        return client.request(method, f"/plugins/{slug}{path}", **kwargs)


def result(gw: InProcess, slug: str, path: str, method: str = "GET", **kwargs: Any) -> Any:
    answer = call(gw, slug, path, method, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def approve(gw: InProcess, slug: str, scopes: list[str]) -> dict[str, Any]:
    with gw.client() as client:
        answer = client.post(f"/api/v1/plugins/{slug}/scopes/approve", json={"scopes": scopes})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def approved_plugin(gw: InProcess, scopes: list[str] = EVERYTHING, command: str = COMMAND) -> str:
    slug = plugin(gw, "custom_endpoint", command=command)
    approve(gw, slug, scopes)
    return slug


def narrowed(tmp_path: Path, scopes: str) -> str:
    """The services plugin declaring only `scopes`."""
    wrapper = tmp_path / f"narrow-{scopes.replace(',', '-')}.py"
    wrapper.write_text(
        f"#!{sys.executable}\nimport os, runpy\nos.environ['SERVICES_SCOPES'] = {scopes!r}\n"
        f"runpy.run_path({str(SERVICES)!r}, run_name='__main__')\n"
    )
    wrapper.chmod(0o755)
    return f"file://{wrapper}"


def test_a_call_waits_for_approval_and_works_after_it_without_a_reload(gw: InProcess) -> None:
    slug = plugin(gw, "custom_endpoint", command=COMMAND)
    with gw.client() as client:
        shown = client.get(f"/api/v1/plugins/{slug}").json()
        pid = client.get(f"/api/v1/plugins/{slug}/health").json()["pid"]
        scopes = client.get(f"/api/v1/plugins/{slug}/scopes").json()
    assert shown["requested_scopes"] == sorted(EVERYTHING) and shown["pending_scopes"] == sorted(EVERYTHING)
    assert {"path": "/kv/{key...}", "methods": ["DELETE", "GET", "PUT"], "description": "",
            "require_auth": False, "stream": False} in shown["routes"]  # fmt: skip
    assert scopes == {
        "plugin": slug,
        "requested": sorted(EVERYTHING),
        "approved": [],
        "pending": sorted(EVERYTHING),
    }

    refused = call(gw, slug, "/kv/greeting", "PUT", content=b"hi")
    assert refused.status_code == 403
    assert refused.json() == {
        "code": "PERMISSION_DENIED",
        "message": f"plugin {slug} may not use kv.readwrite until an operator approves it: POST "
        f'/api/v1/plugins/{slug}/scopes/approve with {{"scopes": ["kv.readwrite"]}}, or solstice plugins '
        f"approve {slug} kv.readwrite",
    }
    after = approve(gw, slug, ["kv.readwrite"])
    assert after["pending"] == ["apps.read", "events.publish", "llms.call", "llms.read"]
    assert [a["scope"] for a in after["approved"]] == ["kv.readwrite"] and after["approved"][0]["approved_by"]
    assert result(gw, slug, "/kv/greeting", "PUT", content=b"hi") is False
    assert result(gw, slug, "/kv/greeting") == "hi"  # kv.readwrite covers kv.read
    with gw.client() as client:
        assert client.get(f"/api/v1/plugins/{slug}/health").json()["pid"] == pid
        audit = client.get("/api/v1/audit", params={"target": slug}).json()
        revoked = client.post(f"/api/v1/plugins/{slug}/scopes/revoke", json={"scopes": ["kv.readwrite"]})
    assert revoked.json()["approved"] == []
    assert any(e["action"] == "plugin.scopes.approve" and e["detail"] == "kv.readwrite" for e in audit)
    assert call(gw, slug, "/kv/greeting").status_code == 403


def test_approving_unknown_or_no_scopes_is_refused_with_the_valid_ones(gw: InProcess) -> None:
    slug = plugin(gw, "custom_endpoint", command=COMMAND)
    with gw.client() as client:
        unknown = client.post(f"/api/v1/plugins/{slug}/scopes/approve", json={"scopes": ["kv.write"]})
        empty = client.post(f"/api/v1/plugins/{slug}/scopes/approve", json={"scopes": []})
        missing = client.post("/api/v1/plugins/nobody/scopes/approve", json={"scopes": ["kv.read"]})
        scopes = client.get(f"/api/v1/plugins/{slug}/scopes").json()
    assert unknown.status_code == 422
    assert "unknown scope 'kv.write'; valid scopes: kv.read, kv.readwrite" in unknown.json()["detail"]
    assert empty.status_code == 422 and "scopes is empty" in empty.json()["detail"]
    assert missing.status_code == 404
    assert scopes["approved"] == []


def test_a_scope_the_plugin_did_not_declare_is_refused_even_when_approved(
    gw: InProcess, tmp_path: Path
) -> None:
    slug = approved_plugin(gw, ["kv.readwrite"], command=narrowed(tmp_path, "kv.read"))
    assert result(gw, slug, "/kv/a") is None
    refused = call(gw, slug, "/kv/a", "PUT", content=b"x")
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        f"plugin {slug} did not declare the scope kv.readwrite; add it to the plugin's scopes and reload it"
    )


def test_kv_put_get_delete_and_expiry(gw: InProcess) -> None:
    slug = approved_plugin(gw)
    assert result(gw, slug, "/kv/a/b c", "PUT", content="é".encode()) is False
    assert result(gw, slug, "/kv/a/b c") == "é"
    assert result(gw, slug, "/kv/a/b c", "PUT", content=b"second") is True
    assert result(gw, slug, "/kv/a/b c") == "second"
    assert result(gw, slug, "/kv/a/b c", "DELETE") is True
    assert result(gw, slug, "/kv/a/b c", "DELETE") is False
    assert result(gw, slug, "/kv/a/b c") is None
    assert result(gw, slug, "/kv/short", "PUT", content=b"x", params={"ttl_ms": "300"}) is False
    listed = result(gw, slug, "/list")["keys"]
    assert [k["key"] for k in listed] == ["short"] and listed[0]["expires"] > time.time() * 1000
    wait_until(lambda: result(gw, slug, "/kv/short") is None, 10, what="the key to expire")
    assert result(gw, slug, "/list")["keys"] == []
    # An expired key did not exist, as far as a put can tell.
    assert result(gw, slug, "/kv/short", "PUT", content=b"y") is False


def test_kv_lists_by_prefix_in_byte_order_page_by_page(gw: InProcess) -> None:
    slug = approved_plugin(gw)
    keys = ["p/%", "p/_", "p/a", "p/b", "p/B", "p/é", "px", "q"]
    for key in keys:
        result(gw, slug, f"/kv/{key}", "PUT", content=b"v")
    under = sorted(k for k in keys if k.startswith("p/"))  # LIKE wildcards in a prefix are literal
    first = result(gw, slug, "/list", params={"prefix": "p/", "limit": "4"})
    second = result(gw, slug, "/list", params={"prefix": "p/", "limit": "4", "token": first["next"]})
    assert [k["key"] for k in first["keys"]] + [k["key"] for k in second["keys"]] == under
    assert second["next"] == "" and first["keys"][0]["size"] == len(b"p/%") + 1
    assert result(gw, slug, "/keys", params={"prefix": "p"}) == sorted(k for k in keys if k.startswith("p"))
    assert result(gw, slug, "/keys", params={"prefix": "p/b"}) == ["p/b"]  # case counts
    bad = call(gw, slug, "/list", params={"token": "not a token!"})
    assert bad.status_code == 400 and "pass next_page_token as given" in bad.json()["message"]
    assert call(gw, slug, "/list", params={"limit": "1001"}).status_code == 400


def test_kv_limits_refuse_without_writing(tmp_path: Path) -> None:
    gw = InProcess(app_settings(tmp_path, plugin_kv_max_value_bytes=100, plugin_kv_max_bytes=250)).start()
    try:
        slug = approved_plugin(gw)
        big = call(gw, slug, "/kv/big", "PUT", content=b"x" * 101)
        assert big.status_code == 400
        assert big.json()["message"] == (
            "the value for key 'big' is 101 bytes; values are at most 100 bytes (SOLSTICE_PLUGIN_KV_MAX_VALUE_BYTES)"
        )
        assert result(gw, slug, "/kv/one", "PUT", content=b"x" * 100) is False
        assert result(gw, slug, "/kv/two", "PUT", content=b"x" * 100) is False
        full = call(gw, slug, "/kv/three", "PUT", content=b"x" * 100)
        assert full.status_code == 507
        assert full.json()["message"] == (
            f"plugin {slug} stores 206 of its 250 bytes and 'three' (105 bytes) does not fit; "
            "delete keys or raise SOLSTICE_PLUGIN_KV_MAX_BYTES"
        )
        assert result(gw, slug, "/kv/three") is None
        # Replacing a value counts the new size instead of the old one.
        assert result(gw, slug, "/kv/two", "PUT", content=b"y" * 100) is True
        long_key = call(gw, slug, "/kv/" + "k" * 513, "PUT", content=b"x")
        assert long_key.status_code == 400 and "keys are at most 512 bytes" in long_key.json()["message"]
        with gw.client() as client:
            cleared = client.delete(f"/api/v1/plugins/{slug}/data")
        assert cleared.json() == {"plugin": slug, "deleted_keys": 2}
        assert result(gw, slug, "/keys") == []
        assert result(gw, slug, "/kv/three", "PUT", content=b"x" * 100) is False
    finally:
        gw.stop()


def test_a_plugins_data_is_its_own_and_goes_with_it(gw: InProcess) -> None:
    first, second = approved_plugin(gw), approved_plugin(gw)
    result(gw, first, "/kv/shared-name", "PUT", content=b"first's")
    assert result(gw, second, "/kv/shared-name") is None
    with gw.client() as client:
        assert client.delete(f"/api/v1/plugins/{first}").status_code == 204
    plugin(gw, "custom_endpoint", command=COMMAND, slug=first, name=first)
    approve(gw, first, ["kv.read"])
    assert result(gw, first, "/kv/shared-name") is None


def test_llms_and_apps_as_the_api_shows_them_without_secrets(gw: InProcess) -> None:
    route = Route(gw, api_key="sk-upstream-secret")
    slug = approved_plugin(gw)
    llms = result(gw, slug, "/llms")
    mine = next(llm for llm in llms if llm["slug"] == route.slug)
    assert mine["vendor"] == "mock" and mine["is_active"] is True
    assert result(gw, slug, f"/llms/{route.slug}") == mine == result(gw, slug, f"/llms/{mine['id']}")
    app = result(gw, slug, f"/apps/{route.app_id}")
    assert app["llms"] == [route.slug] and app["name"] == f"app-{route.slug}"
    assert app in result(gw, slug, "/apps")
    everything = call(gw, slug, "/llms").text + call(gw, slug, "/apps").text
    assert "sk-upstream-secret" not in everything and route.key not in everything
    missing = call(gw, slug, "/llms/nowhere")
    assert missing.status_code == 404
    assert missing.json()["message"] == "no LLM 'nowhere'; give an LLM's slug or id (llms.list shows them)"


def test_events_reach_the_log_and_the_audit_log(gw: InProcess) -> None:
    slug = approved_plugin(gw)
    assert result(gw, slug, "/event/webhook.received", "POST", json={"bytes": 12}) is None
    with gw.client() as client:
        audit = client.get("/api/v1/audit", params={"target": slug}).json()
    event = next(e for e in audit if e["action"] == "plugin.event")
    assert event["actor"] == f"plugin:{slug}" and '"webhook.received"' in event["detail"]
    assert json.loads(event["detail"]) == {"event": "webhook.received", "data": {"bytes": 12}}
    assert any(r.get("event") == "plugin event" and r.get("plugin") == slug for r in gw._capture.records)
    bad = call(gw, slug, "/event/has space", "POST", json={})
    assert bad.status_code == 400 and "name it like 'webhook.received'" in bad.json()["message"]


def test_a_plugin_calls_an_llm_whole_or_streamed_and_its_own_hooks_do_not_loop(
    gw: InProcess, record_file: Path
) -> None:
    slug = plugin(gw, ["custom_endpoint", "pre_auth"], command=COMMAND)
    refused = call(gw, slug, "/ask/anything")
    assert refused.status_code == 403 and "may not use llms.call until" in refused.json()["message"]
    approve(gw, slug, EVERYTHING)
    collector = plugin(
        gw, "data_collection", command=f"file://{TESTBED}", config={"record_file": str(record_file)}
    )
    route = Route(gw, chain=[{"plugin": slug}, {"plugin": collector}])
    # A client's request: the hook calls the same LLM, whose chain holds the hook; it is not run again.
    answer = route.call(headers={"x-ask": "yes"})
    assert answer.status_code == 200, answer.text
    assert result(gw, slug, "/kv/pre_auth-calls") == "1"
    assert result(gw, slug, f"/ask/{route.slug}") == {"status": 200, "content": "echo: tell me"}
    assert result(gw, slug, "/kv/pre_auth-calls") == "1"
    records = wait_until(
        lambda: (
            (lines := record_file.read_text().splitlines() if record_file.exists() else [])
            and len(lines) == 3
            and lines
        ),
        what="three data_collection records",
    )
    assert sorted(line.endswith(f"caller={slug}") for line in records) == [False, True, True]
    assert any(f"app={route.app_id}" in line and "caller" not in line for line in records)
    streamed = call(gw, slug, f"/sse/{route.slug}")
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.count("data: ") >= 3 and streamed.text.rstrip().endswith("data: [DONE]")
    missing = call(gw, slug, "/ask/nowhere")
    assert missing.status_code == 404
    assert missing.json()["message"] == "no LLM with slug 'nowhere'; list LLMs with GET /api/v1/llms"


def test_a_grpc_plugin_calls_back_over_the_connection_the_host_opened(
    gw: InProcess, standalone: type[Standalone]
) -> None:
    server = standalone(SERVICES)
    slug = approved_plugin(gw, ["kv.readwrite"], command=server.command)
    assert result(gw, slug, "/kv/remote", "PUT", content=b"over grpc") is False
    port = server.port
    server.stop()
    # The same plugin served again behind the same address: the host opens the channel anew.
    standalone(SERVICES, port)
    value = wait_until(
        lambda: (r := call(gw, slug, "/kv/remote")).status_code == 200 and r.json(),
        30,
        what="the plugin to be back and connected",
    )
    assert value == {"result": "over grpc"}


def test_a_new_version_asking_for_more_keeps_its_approvals_and_the_rest_is_pending(
    gw: InProcess, tmp_path: Path
) -> None:
    slug = approved_plugin(gw, ["kv.read"], command=narrowed(tmp_path, "kv.read"))
    with gw.client() as client:
        changed = client.patch(
            f"/api/v1/plugins/{slug}", json={"command": narrowed(tmp_path, "kv.read,llms.read")}
        )
        assert changed.status_code == 200, changed.text
        shown = client.get(f"/api/v1/plugins/{slug}").json()
        scopes = client.get(f"/api/v1/plugins/{slug}/scopes").json()
    assert shown["requested_scopes"] == ["kv.read", "llms.read"] and shown["pending_scopes"] == ["llms.read"]
    assert [a["scope"] for a in scopes["approved"]] == ["kv.read"] and scopes["pending"] == ["llms.read"]
    assert result(gw, slug, "/kv/a") is None
    assert call(gw, slug, "/llms").status_code == 403


class Intruder:
    """A peer that opens a HostChannel of its own to a grpc:// plugin, and counts the calls it gets."""

    def __init__(self, port: int) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.closing = threading.Event()
        self.calls: list[pb.ServiceCall] = []

        def messages() -> Iterator[pb.HostMessage]:
            yield pb.HostMessage(hello=pb.HostHello(plugin_slug="intruder", link="intruder-token"))
            self.closing.wait()

        self.stream = pb_grpc.PluginStub(self.channel).HostChannel(messages())
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with contextlib.suppress(grpc.RpcError):
            for call in self.stream:
                self.calls.append(call)

    def close(self) -> None:
        self.closing.set()
        self.stream.cancel()
        self.reader.join(10)
        self.channel.close()


def test_a_grpc_plugin_registered_twice_calls_back_as_each_registration(
    gw: InProcess, standalone: type[Standalone]
) -> None:
    server = standalone(SERVICES)
    first = approved_plugin(gw, ["kv.readwrite"], command=server.command)
    second = approved_plugin(gw, ["kv.readwrite"], command=server.command)
    intruder = Intruder(server.port)
    try:
        # Each registration's calls go over its own channel, whichever opened last.
        assert result(gw, first, "/whoami") == first and result(gw, second, "/whoami") == second
        assert result(gw, first, "/kv/mine", "PUT", content=b"first's") is False
        assert result(gw, second, "/kv/mine") is None
        assert result(gw, second, "/kv/mine", "PUT", content=b"second's") is False
        assert result(gw, first, "/kv/mine") == "first's"
        assert intruder.calls == []
    finally:
        intruder.close()


def test_plugins_calling_llms_from_their_hooks_cannot_loop_through_each_other(
    gw: InProcess, standalone: type[Standalone]
) -> None:
    # One grpc:// process behind both registrations: each hook's calls must still be its own.
    server = standalone(SERVICES)
    a = plugin(gw, ["custom_endpoint", "pre_auth"], command=server.command)
    b = plugin(gw, ["custom_endpoint", "pre_auth"], command=server.command)
    approve(gw, a, ["kv.readwrite", "llms.call"])
    approve(gw, b, ["kv.readwrite", "llms.call"])
    x, y = Route(gw, chain=[{"plugin": a}]), Route(gw, chain=[{"plugin": b}])
    # a's hook (on x) asks y, whose hook (b) asks x, whose hook (a) asks y again: refused.
    answer = x.call(headers={"x-ask": f"{y.slug},{x.slug},{y.slug}"})
    assert answer.status_code == 200, answer.text
    assert result(gw, a, "/kv/refused") == (
        f"FAILED_PRECONDITION: plugin {a}'s llms.call would loop: it serves a request that its own "
        f"llms.call started ({a} -> {b} -> {a}); a hook must not call an LLM whose hooks call back into it"
    )
    assert result(gw, b, "/kv/refused") is None
    # Calls that do not come back to a plugin of the chain go through.
    assert x.call(headers={"x-ask": y.slug}).headers.get("x-inner-status") is None
    assert result(gw, b, "/kv/refused") is None


def test_a_plugin_that_is_not_running_answers_503(gw: InProcess, tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(3)\n")
    broken.chmod(0o755)
    with gw.client() as client:
        created = client.post("/api/v1/plugins", json={
            "name": "broken", "command": f"file://{broken}", "hook_types": ["custom_endpoint"],
        })  # fmt: skip
    assert created.status_code == 201 and created.json()["status"] == "failed", created.text
    answer = call(gw, "broken", "/anything")
    assert answer.status_code == 503
    assert answer.json()["error"]["message"] == "plugin broken is not running; try again shortly"


def test_revoking_a_scope_a_broader_approval_grants_is_refused(gw: InProcess) -> None:
    slug = approved_plugin(gw, ["kv.readwrite"])
    with gw.client() as client:
        refused = client.post(f"/api/v1/plugins/{slug}/scopes/revoke", json={"scopes": ["kv.read"]})
        both = client.post(
            f"/api/v1/plugins/{slug}/scopes/revoke", json={"scopes": ["kv.read", "kv.readwrite"]}
        )
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        f"plugin {slug} holds kv.read through its approval of kv.readwrite; "
        "revoke kv.readwrite instead (and approve kv.read alone if it should keep it)"
    )
    assert both.status_code == 200 and both.json()["approved"] == []
    assert call(gw, slug, "/kv/a").status_code == 403


def test_an_event_too_big_for_the_audit_log_is_refused(gw: InProcess) -> None:
    slug = approved_plugin(gw)
    big = call(gw, slug, "/event/big", "POST", json={"text": "x" * 1800})
    assert big.status_code == 400
    assert big.json()["message"] == (
        "the data of event big is over 1800 characters of JSON; "
        "send less (events are records, not payloads: keep bulk data in kv)"
    )
    assert result(gw, slug, "/event/fits", "POST", json={"text": "é" * 250}) is None
    with gw.client() as client:
        audit = client.get("/api/v1/audit", params={"target": slug}).json()
    event = next(e for e in audit if e["action"] == "plugin.event")
    assert json.loads(event["detail"]) == {"event": "fits", "data": {"text": "é" * 250}}


def test_llms_calls_nest_at_most_four_deep() -> None:
    from solstice.gateway.llm_calls import MAX_CALL_DEPTH, _loop_refusal

    assert MAX_CALL_DEPTH == 4 and _loop_refusal(("a", "b", "c", "d")) is None
    assert _loop_refusal(("a", "b", "c", "d", "e")) == (
        "llms.call is nested 5 deep (a -> b -> c -> d -> e); Solstice allows 4, "
        "so that plugins calling LLMs from their hooks cannot loop"
    )
    assert "would loop" in str(_loop_refusal(("a", "b", "a")))
