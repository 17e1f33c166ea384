"""Object hooks: plugins allow, reject or change LLMs, apps and plugins before they are stored, and
hear of each stored change at least once."""

from __future__ import annotations

import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.api.problems import problem_detail
from tests.conftest import ROOT, Standalone, wait_until
from tests.server import Server

OBJECTS = ROOT / "tests" / "plugins" / "objects.py"
# Deliveries every 0.1 s, and a failed one sent again within a second: tests wait on a plugin that
# comes back (reconnected within a second), not on the back-offs.
QUICK_RETRIES = {
    "SOLSTICE_OBJECT_HOOK_INTERVAL": "0.1",
    "SOLSTICE_OBJECT_HOOK_RETRY_MAX": "1",
    "SOLSTICE_PLUGIN_RESTART_BACKOFF_MAX": "1",
}


def _register(
    client: httpx.Client, slug: str, mode: str, command: str = "", approve: bool = True, **fields: Any
) -> dict[str, Any]:
    created = client.post(
        "/api/v1/plugins",
        json={
            "name": slug,
            "slug": slug,
            "command": command or f"file://{OBJECTS}",
            "hook_type": "object_hooks",
            "config": {"mode": mode, **fields.pop("config", {})},
            **fields,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["requested_scopes"] == ["objects.hook"]
    if approve:
        approved = client.post(f"/api/v1/plugins/{slug}/scopes/approve", json={"scopes": ["objects.hook"]})
        assert approved.status_code == 200, approved.text
    body: dict[str, Any] = created.json()
    return body


def _register_down(client: httpx.Client, slug: str, remote: Standalone, log: Path) -> None:
    """Register the grpc:// plugin `remote` to write after_* events to `log`, then stop it.

    fail_open: its before_* calls fail while it is down, and the changes go ahead."""
    _register(client, slug, "", command=remote.command, config={"log": str(log)}, failure_policy="fail_open")
    remote.stop()


def _llm_names(client: httpx.Client) -> list[str]:
    return [llm["name"] for llm in client.get("/api/v1/llms").json()]


def test_before_hooks_reject_and_change_objects(tmp_path: Path) -> None:
    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            _register(client, "naming", "naming", approve=False)
            # Until objects.hook is approved the plugin is not asked.
            assert (
                client.post("/api/v1/llms", json={"name": "Before Approval", "vendor": "mock"}).status_code
                == 201
            )
            client.post("/api/v1/plugins/naming/scopes/approve", json={"scopes": ["objects.hook"]})

            refused = client.post("/api/v1/llms", json={"name": "Bad Name", "vendor": "mock"})
            assert problem_detail(refused, 422) == (
                "plugin naming rejected this llm: LLM name 'Bad Name' breaks rule lowercase-names: "
                "use lower-case letters, digits and hyphens"
            )
            assert "Bad Name" not in _llm_names(client)
            assert client.post("/api/v1/llms", json={"name": "good-one", "vendor": "mock"}).status_code == 201
            renamed = client.patch("/api/v1/llms/good-one", json={"name": "Good One"})
            assert "breaks rule lowercase-names" in problem_detail(renamed, 422)
            assert client.get("/api/v1/llms/good-one").json()["name"] == "good-one"

            _register(client, "defaults", "defaults")
            plain = client.post(
                "/api/v1/plugins",
                json={"name": "plain", "command": f"file://{OBJECTS}", "hook_type": "object_hooks"},
            )
            assert plain.status_code == 201 and plain.json()["description"] == "added by SOLSTICE_ADMIN_TOKEN"
            described = client.post(
                "/api/v1/plugins",
                json={
                    "name": "described",
                    "command": f"file://{OBJECTS}",
                    "hook_type": "object_hooks",
                    "description": "mine",
                },
            )
            assert described.json()["description"] == "mine"

            _register(client, "invalid", "invalid")
            broken = client.post("/api/v1/llms", json={"name": "fine", "vendor": "mock"})
            detail = problem_detail(broken, 422)
            assert detail.startswith("plugin invalid changed this llm into one that is not valid: vendor")
            assert "fine" not in _llm_names(client)

            audit = client.get("/api/v1/audit", params={"limit": 200}).json()
            entries = audit["data"] if isinstance(audit, dict) else audit
            assert not [
                e for e in entries if e["action"] == "llm.create" and e["target"] in ("bad-name", "fine")
            ]
    finally:
        assert server.stop() == 0


def test_failing_hooks_follow_their_failure_policy(tmp_path: Path) -> None:
    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            _register(client, "garbage", "garbage")
            answered = client.post("/api/v1/apps", json={"name": "first"})
            assert problem_detail(answered, 503) == (
                "plugin garbage's before_create hook on app failed (it answered no decision: allow, reject "
                "or modify), so the change was not made; fix or deactivate the plugin, or set its "
                "failure_policy to fail_open"
            )
            assert client.get("/api/v1/apps").json() == []
            assert client.patch("/api/v1/plugins/garbage", json={"is_active": False}).status_code == 200

            _register(client, "slow", "slow", timeout_ms=300)
            late = problem_detail(client.post("/api/v1/apps", json={"name": "second"}), 503)
            assert "plugin slow's before_create hook on app failed (it did not answer within 300 ms)" in late
            assert (
                client.patch("/api/v1/plugins/slow", json={"failure_policy": "fail_open"}).status_code == 200
            )
            assert client.post("/api/v1/apps", json={"name": "third"}).status_code == 201
            assert [app["name"] for app in client.get("/api/v1/apps").json()] == ["third"]
    finally:
        assert server.stop() == 0


def test_a_policy_plugin_cannot_lock_operators_out(tmp_path: Path) -> None:
    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            _register(client, "deny-a", "deny")
            # deny-a refuses every change, the creation of another plugin included.
            refused = client.post(
                "/api/v1/plugins",
                json={"name": "deny-b", "command": f"file://{OBJECTS}", "hook_type": "object_hooks"},
            )
            assert (
                problem_detail(refused, 422)
                == "plugin deny-a rejected this plugin: before_create of every plugin is denied"
            )
            # Its own object is not its to judge.
            own = client.patch("/api/v1/plugins/deny-a", json={"description": "the gatekeeper"})
            assert own.status_code == 200 and own.json()["description"] == "the gatekeeper"
            assert client.patch("/api/v1/plugins/deny-a", json={"is_active": False}).status_code == 200
            _register(client, "deny-b", "deny")
            # With deny-b approved, reactivating deny-a is a change deny-b refuses...
            back = client.patch("/api/v1/plugins/deny-a", json={"is_active": True})
            assert "plugin deny-b rejected this plugin" in problem_detail(back, 422)
            assert "rejected this llm" in problem_detail(client.post("/api/v1/llms", json={"name": "x"}), 422)
            # ...but switching a policy plugin off, or deleting it, is never refused.
            assert client.delete("/api/v1/plugins/deny-b").status_code == 204
            assert client.delete("/api/v1/plugins/deny-a").status_code == 204
            assert client.post("/api/v1/llms", json={"name": "x", "vendor": "mock"}).status_code == 201
    finally:
        assert server.stop() == 0


def _records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_after_hooks_reach_a_plugin_that_was_down_in_order(
    tmp_path: Path, standalone: type[Standalone]
) -> None:
    log = tmp_path / "after.jsonl"
    remote = standalone(OBJECTS)
    port = remote.port
    server = Server(tmp_path, env=QUICK_RETRIES).wait_ready()
    try:
        with server.client() as client:
            _register_down(client, "recorder", remote, log)
            made = client.post(
                "/api/v1/llms",
                json={
                    "name": "watched",
                    "vendor": "openai",
                    "upstream_url": "https://api.example.com/v1",
                    "api_key": "sk-secret-1",
                },
            )
            assert made.status_code == 201, made.text
            assert client.patch("/api/v1/llms/watched", json={"is_active": False}).status_code == 200
            assert client.delete("/api/v1/llms/watched").status_code == 204
            app = client.post("/api/v1/apps", json={"name": "watcher"}).json()
            wait_until(
                lambda: "solstice_object_hook_backlog 4.0" in client.get("/metrics").text,
                10,
                server.log,
                what="four waiting notifications",
            )
        assert not _records(log)

        standalone(OBJECTS, port)  # the plugin is back, behind the same address
        records = wait_until(
            lambda: len(_records(log)) >= 4 and _records(log), 30, server.log, what="four notifications"
        )
        llm = [r for r in records if r["type"] == "llm"]
        assert [r["event"] for r in llm] == ["after_create", "after_update", "after_delete"]
        assert {r["object"]["id"] for r in llm} == {made.json()["id"]}
        assert llm[1]["previous"]["is_active"] is True and llm[1]["object"]["is_active"] is False
        assert all(r["object"]["has_api_key"] is True for r in llm)
        assert "sk-secret-1" not in log.read_text()
        assert len({r["delivery"] for r in records}) == len(records)
        assert [r["object"]["id"] for r in records if r["type"] == "app"] == [app["id"]]
        assert all(r["actor"] == "SOLSTICE_ADMIN_TOKEN" for r in records)
        with server.client() as client:
            wait_until(
                lambda: "solstice_object_hook_backlog 0.0" in client.get("/metrics").text,
                10,
                server.log,
                what="an empty backlog",
            )
    finally:
        assert server.stop() == 0


def test_replacements_cannot_hold_nulls_or_move_keys(tmp_path: Path) -> None:
    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            client.post(
                "/api/v1/llms",
                json={"name": "keyed", "upstream_url": "https://api.example.com/v1", "api_key": "sk-1"},
            )
            _register(client, "nulls", "nulls")
            nulled = client.patch("/api/v1/llms/keyed", json={"is_active": False})
            assert problem_detail(nulled, 422) == (
                "plugin nulls changed this llm into one that is not valid: name cannot be null"
            )
            client.patch("/api/v1/plugins/nulls", json={"is_active": False})
            _register(client, "redirect", "redirect")
            moved = client.patch("/api/v1/llms/keyed", json={"is_active": False})
            assert "an object hook moved LLM keyed from https://api.example.com:443 to https://elsewhere" in (
                problem_detail(moved, 422)
            )
            new = client.post(
                "/api/v1/llms",
                json={"name": "fresh", "upstream_url": "https://api.example.com/v1", "api_key": "sk-2"},
            )
            detail = problem_detail(new, 422)
            assert "an object hook moved LLM fresh" in detail
            assert detail.endswith("(plugin redirect changed this llm before the check)")
            # Credentials in a URL are refused before any hook sees them.
            leaky = client.post(
                "/api/v1/llms", json={"name": "leaky", "upstream_url": "https://u:pw@api.example.com/v1"}
            )
            assert leaky.status_code == 400
            llm = client.get("/api/v1/llms/keyed").json()
            assert (llm["upstream_url"], llm["is_active"]) == ("https://api.example.com/v1", True)
    finally:
        assert server.stop() == 0


def test_hooks_see_ids_and_consecutive_changes_chain(tmp_path: Path) -> None:
    log = tmp_path / "seen.jsonl"
    server = Server(tmp_path, env={"SOLSTICE_OBJECT_HOOK_INTERVAL": "0.1"}).wait_ready()
    try:
        with server.client() as client:
            _register(client, "seer", "", config={"log": str(log), "log_before": True})
            llm = client.post("/api/v1/llms", json={"name": "chained", "vendor": "mock"}).json()
            app = client.post("/api/v1/apps", json={"name": "user", "llms": ["chained"]}).json()

        def rename(n: int) -> int:
            with server.client() as client:
                # A long X-Request-ID (up to 128 characters) is kept with the notification.
                headers = {"X-Request-ID": "r" * 100 + str(n)}
                return client.patch(
                    "/api/v1/llms/chained", json={"options": {"n": n}}, headers=headers
                ).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(rename, range(12))) == {200}
        with server.client() as client:
            assert client.delete("/api/v1/llms/chained").status_code == 204
        records = wait_until(
            lambda: (found := _records(log)) and any(r["event"] == "after_delete" for r in found) and found,
            15,
            server.log,
            what="the after_delete notification",
        )
        before = [r for r in records if r["event"] == "before_update"]
        assert before and all(r["object"]["id"] == llm["id"] and "has_api_key" in r["object"] for r in before)
        assert all(r["previous"]["id"] == llm["id"] for r in before)
        updates = [r for r in records if r["event"] == "after_update" and r["type"] == "llm"]
        assert len(updates) == 12
        # Each change's previous is the one before it: changes to one object are not interleaved.
        for earlier, later in itertools.pairwise(updates):
            assert later["previous"] == earlier["object"]
        assert [r["event"] for r in records if r["type"] == "llm" and r["event"].startswith("after")][
            -1
        ] == "after_delete"
        # Deleting the LLM took it from the app: the app's change is told too.
        [app_update] = [r for r in records if r["event"] == "after_update" and r["type"] == "app"]
        assert (app_update["previous"]["llms"], app_update["object"]["llms"]) == ([llm["id"]], [])
        assert app_update["object"]["id"] == app["id"]
    finally:
        assert server.stop() == 0


def test_switching_a_policy_off_does_not_carry_other_changes_past_hooks(tmp_path: Path) -> None:
    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            _register(client, "deny-a", "deny", approve=False)
            _register(client, "deny-b", "deny", approve=False)
            for slug in ("deny-a", "deny-b"):
                client.post(f"/api/v1/plugins/{slug}/scopes/approve", json={"scopes": ["objects.hook"]})
            sneaky = client.patch("/api/v1/plugins/deny-a", json={"is_active": False, "timeout_ms": 60000})
            assert "plugin deny-b rejected this plugin" in problem_detail(sneaky, 422)
            assert client.patch("/api/v1/plugins/deny-a", json={"is_active": False}).status_code == 200
    finally:
        assert server.stop() == 0


def test_notifications_of_a_revoked_plugin_are_dropped(tmp_path: Path, standalone: type[Standalone]) -> None:
    log = tmp_path / "after.jsonl"
    remote = standalone(OBJECTS)
    port = remote.port
    server = Server(tmp_path, env=QUICK_RETRIES).wait_ready()
    try:
        with server.client() as client:
            _register_down(client, "gone", remote, log)
            client.post("/api/v1/llms", json={"name": "quiet", "vendor": "mock"})
            wait_until(
                lambda: "solstice_object_hook_backlog 1.0" in client.get("/metrics").text, 10, server.log
            )
            client.post("/api/v1/plugins/gone/scopes/revoke", json={"scopes": ["objects.hook"]})
        standalone(OBJECTS, port)
        with server.client() as client:
            wait_until(
                lambda: "solstice_object_hook_backlog 0.0" in client.get("/metrics").text, 15, server.log
            )
            assert "solstice_object_hook_dropped_total 1.0" in client.get("/metrics").text
        assert not _records(log)
    finally:
        assert server.stop() == 0
