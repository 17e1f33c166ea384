"""Scheduled tasks: declared and API schedules, runs recorded once across servers, misses and failures."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.api.problems import problem_detail
from tests.conftest import ROOT, Standalone, pid_alive, wait_until
from tests.postgres import Postgres
from tests.server import Server

SCHEDULED = ROOT / "tests" / "plugins" / "scheduled.py"
# Checks often, notes runs alive often, and calls a run missed after 3 s: tests wait seconds, not minutes.
FAST = {
    "SOLSTICE_SCHEDULE_INTERVAL": "0.2",
    "SOLSTICE_SCHEDULE_HEARTBEAT": "0.5",
    "SOLSTICE_SCHEDULE_MISFIRE_GRACE": "3",
}


def _server(data_dir: Path, url: str = "") -> Server:
    data_dir.mkdir(exist_ok=True)
    return Server(data_dir, database_url=url, env=FAST)


def _register(server: Server, slug: str, log: Path, approve: bool = True, command: str = "") -> None:
    with server.client() as client:
        created = client.post(
            "/api/v1/plugins",
            json={
                "name": slug,
                "slug": slug,
                "command": command or f"file://{SCHEDULED}",
                "hook_type": "scheduled_task",
                "config": {"log": str(log)},
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["requested_scopes"] == ["kv.readwrite", "schedules.run"]
        if approve:
            approved = client.post(
                f"/api/v1/plugins/{slug}/scopes/approve", json={"scopes": ["schedules.run", "kv.readwrite"]}
            )
            assert approved.status_code == 200, approved.text


def _runs(server: Server, slug: str, schedule: str = "tick") -> list[dict[str, Any]]:
    with server.client() as client:
        response = client.get(f"/api/v1/plugins/{slug}/schedules/{schedule}/runs", params={"limit": 1000})
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["data"]
    return runs


def _finished(server: Server, schedule: str) -> list[dict[str, Any]]:
    """The oldest finished run of one of plugin faulty's schedules, alone in a list (empty before one)."""
    return [r for r in _runs(server, "faulty", schedule) if r["status"] != "running"][-1:]


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_declared_schedule_runs_once_its_scope_is_approved(tmp_path: Path) -> None:
    server = _server(tmp_path / "a").wait_ready()
    log = tmp_path / "runs.jsonl"
    try:
        _register(server, "ticker", log, approve=False)
        with server.client() as client:
            listed = client.get("/api/v1/plugins/ticker/schedules").json()["data"]
        assert [(s["id"], s["name"], s["cron"], s["declared"], s["enabled"]) for s in listed] == [
            ("tick", "Every tick", "*/2 * * * * *", True, True)
        ]
        skipped = wait_until(lambda: _runs(server, "ticker"), 10, server.log, what="a skipped run")
        assert skipped[0]["status"] == "skipped"
        assert "lacks an approval of scope schedules.run" in skipped[0]["error"]
        assert not _lines(log)

        with server.client() as client:
            client.post(
                "/api/v1/plugins/ticker/scopes/approve", json={"scopes": ["schedules.run", "kv.readwrite"]}
            )
        done = wait_until(
            lambda: [r for r in _runs(server, "ticker") if r["status"] == "succeeded"][1:] or None,
            15,
            server.log,
            what="two successful runs",
        )
        ran = _lines(log)
        assert {line["run_id"] for line in ran} >= {run["run_id"] for run in done}
        assert all(line["config"] == {"from": "declaration"} and line["schedule"] == "tick" for line in ran)
        # Each due time is a whole even second of the cron, and is the run's due_at.
        assert all(line["due"] % 2 == 0 for line in ran)
        assert all(run["duration_ms"] is not None and run["started_at"] for run in done)
        with server.client() as client:
            # The task's kv.put went over the service channel: one key per finished run.
            cleared = client.delete("/api/v1/plugins/ticker/data").json()
            metrics = client.get("/metrics").text
        assert cleared["deleted_keys"] >= len(done)
        assert 'solstice_schedule_runs_total{plugin="ticker",status="succeeded"}' in metrics
        assert 'solstice_schedule_runs_total{plugin="ticker",status="skipped"}' in metrics
    finally:
        assert server.stop() == 0


def test_a_grpc_plugin_runs_its_tasks_too(tmp_path: Path, standalone: type[Standalone]) -> None:
    remote = standalone(SCHEDULED)
    server = _server(tmp_path / "a").wait_ready()
    log = tmp_path / "runs.jsonl"
    try:
        _register(server, "remote", log, command=remote.command)
        done = wait_until(
            lambda: [r for r in _runs(server, "remote") if r["status"] == "succeeded"] or None,
            15,
            server.log,
            what="a successful run",
        )
        assert {line["pid"] for line in _lines(log)} == {remote.proc.pid}
        assert done[0]["run_id"] in {line["run_id"] for line in _lines(log)}
    finally:
        assert server.stop() == 0


def test_operators_add_change_and_remove_schedules(tmp_path: Path) -> None:
    server = _server(tmp_path / "a").wait_ready()
    log = tmp_path / "runs.jsonl"
    base = "/api/v1/plugins/crud/schedules"
    try:
        _register(server, "crud", log)
        with server.client() as client:
            bad = {
                "cron": ("61 * * * *", "cron '61 * * * *' is not valid"),
                "timezone": ("Mars/Olympus", "timezone 'Mars/Olympus' is not a known IANA time zone"),
                "id": (None, "id: input should be a valid string, not null"),
            }
            for field, (value, message) in bad.items():
                body = {"id": "nightly", "cron": "0 3 * * *", field: value}
                assert message in problem_detail(client.post(base, json=body), 422)
            america = client.post(base, json={"id": "x", "cron": "@daily", "timezone": "America"})
            assert "timezone 'America' is not a known IANA time zone" in problem_detail(america, 422)
            three = client.post(base, json={"id": "x", "cron": "* * *"})
            assert "has 3 fields; give five" in problem_detail(three, 422)
            assert client.post(base, json={"id": "Bad Id", "cron": "@daily"}).status_code == 422
            assert client.post(base, json={"id": "x", "cron": "@daily", "extra": 1}).status_code == 422

            created = client.post(
                base,
                json={"id": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Paris", "config": {"k": 1}},
            )
            assert created.status_code == 201, created.text
            nightly = created.json()
            assert nightly["declared"] is False and nightly["enabled"] is True
            assert nightly["next_run_at"].endswith(("T02:00:00Z", "T01:00:00Z"))  # 03:00 in Paris
            again = client.post(base, json={"id": "nightly", "cron": "@hourly"})
            assert "already has a schedule 'nightly'" in problem_detail(again, 409)

            off = client.patch(f"{base}/nightly", json={"enabled": False}).json()
            assert off["enabled"] is False and off["next_run_at"] is None
            on = client.patch(f"{base}/nightly", json={"enabled": True, "cron": "@hourly"}).json()
            assert on["next_run_at"].endswith(":00:00Z") and on["cron"] == "@hourly"
            assert "cron cannot be null" in problem_detail(
                client.patch(f"{base}/nightly", json={"cron": None}), 422
            )
            assert client.patch(f"{base}/nightly", json={"cron": "nope"}).status_code == 422
            assert client.get(f"{base}/nightly").json()["cron"] == "@hourly"  # nothing half-written

            # The declared schedule keeps an operator's change when the plugin starts again.
            assert client.patch(f"{base}/tick", json={"cron": "*/5 * * * * *"}).json()["customized"] is True
            assert client.post("/api/v1/plugins/crud/reload").status_code == 200
            assert client.get(f"{base}/tick").json()["cron"] == "*/5 * * * * *"
            refused = client.delete(f"{base}/tick")
            assert "disable it with PATCH" in problem_detail(refused, 409)
            assert client.delete(f"{base}/nightly").status_code == 204
            assert "has no schedule 'nightly'" in problem_detail(client.get(f"{base}/nightly"), 404)
            assert [s["id"] for s in client.get(base).json()["data"]] == ["tick"]
            assert client.get("/api/v1/plugins/nobody/schedules").status_code == 404

            audit = client.get("/api/v1/audit", params={"limit": 50}).json()
            actions = {entry["action"] for entry in (audit["data"] if isinstance(audit, dict) else audit)}
            assert {"plugin.schedule.create", "plugin.schedule.update", "plugin.schedule.delete"} <= actions

            reader = client.post("/api/v1/tokens", json={"name": "sched-reader", "scope": "read"}).json()[
                "token"
            ]
        with server.client(reader) as client:
            assert client.get(base).status_code == 200
            assert client.post(base, json={"id": "r", "cron": "@daily"}).status_code == 403
            assert client.patch(f"{base}/tick", json={"enabled": False}).status_code == 403
    finally:
        assert server.stop() == 0


def test_failed_and_slow_runs_are_recorded_with_their_reason(tmp_path: Path) -> None:
    server = _server(tmp_path / "a").wait_ready()
    log = tmp_path / "runs.jsonl"
    base = "/api/v1/plugins/faulty/schedules"
    try:
        _register(server, "faulty", log)
        with server.client() as client:
            client.patch(f"{base}/tick", json={"enabled": False})
            client.post(base, json={"id": "boom", "cron": "* * * * * *", "config": {"fail": "disk full"}})
            client.post(
                base,
                json={"id": "slow", "cron": "* * * * * *", "timeout_seconds": 2, "config": {"sleep": 30}},
            )
            client.post(
                base, json={"id": "summary", "cron": "* * * * * *", "config": {"summary": "3 rows copied"}}
            )
        failed = wait_until(lambda: _finished(server, "boom"), 10, server.log, what="a failed run")
        assert failed[0]["status"] == "failed" and failed[0]["error"] == "RuntimeError: disk full"
        late = wait_until(
            lambda: [r for r in _runs(server, "faulty", "slow") if r["status"] == "timed_out"],
            10,
            server.log,
            what="a timed-out run",
        )
        assert "did not answer within 2000 ms during scheduled_task" in late[0]["error"]
        # A due time that comes while the previous run still runs is skipped, not run beside it.
        overlapping = [r for r in _runs(server, "faulty", "slow") if r["status"] == "skipped"]
        assert overlapping[0]["error"] == "the previous run of this schedule is still running"
        told = wait_until(lambda: _finished(server, "summary"), 10, server.log, what="a finished run")
        assert told[0]["status"] == "succeeded" and told[0]["message"] == "3 rows copied"
    finally:
        assert server.stop() == 0


def test_runs_missed_while_down_are_caught_up_or_skipped(tmp_path: Path) -> None:
    data = tmp_path / "a"
    log = tmp_path / "runs.jsonl"
    server = _server(data).wait_ready()
    base = "/api/v1/plugins/sleeper/schedules"
    try:
        _register(server, "sleeper", log)
        with server.client() as client:
            client.patch(f"{base}/tick", json={"cron": "*/2 * * * * *", "catch_up": True})
            client.post(base, json={"id": "skipper", "cron": "*/2 * * * * *"})
        wait_until(lambda: _runs(server, "sleeper", "skipper"), 10, server.log, what="a first run")
    finally:
        assert server.stop() == 0
    time.sleep(4)  # longer than the 3 s grace: the next due times are missed
    server = _server(data).wait_ready()
    try:
        caught = wait_until(
            lambda: [r for r in _runs(server, "sleeper") if r["catch_up"]] or None,
            10,
            server.log,
            what="a catch-up",
        )
        assert caught[0]["status"] in ("running", "succeeded")
        assert any(line["catch_up"] for line in _lines(log))
        skipped = wait_until(
            lambda: [r for r in _runs(server, "sleeper", "skipper") if r["status"] == "skipped"] or None,
            10,
            server.log,
            what="a skipped run",
        )
        assert "missed: no server ran schedules within 3 s" in skipped[0]["error"]
        assert skipped[0]["catch_up"] is False  # not run late: skipped
        # One late run (or skip) each, then back on time.
        wait_until(lambda: len(_runs(server, "sleeper", "skipper")) >= 4, 10, server.log, what="more runs")
        assert sum(r["catch_up"] for r in _runs(server, "sleeper")) == 1
        assert sum(r["status"] == "skipped" for r in _runs(server, "sleeper", "skipper")) == 1
    finally:
        assert server.stop() == 0


def test_two_servers_run_each_due_time_exactly_once(postgres: Postgres, tmp_path: Path) -> None:
    url = postgres.new_database()
    first = _server(tmp_path / "a", url)
    second = _server(tmp_path / "b", url)
    log = tmp_path / "runs.jsonl"
    try:
        first.wait_ready()
        second.wait_ready()
        _register(first, "shared", log)
        wait_until(lambda: len(second.plugin_pids()) == 1, 15, second.log, what="the second server's plugin")
        with first.client() as client:
            client.patch("/api/v1/plugins/shared/schedules/tick", json={"cron": "* * * * * *"})
        wait_until(lambda: len(_lines(log)) >= 8, 30, first.log, what="eight runs")
        lines = _lines(log)
        by_due = Counter(line["due"] for line in lines)
        assert max(by_due.values()) == 1, by_due.most_common(3)
        runs = _runs(first, "shared")
        started = [r for r in runs if r["status"] != "skipped"]
        assert len({r["due_at"] for r in runs}) == len(runs)
        # Both servers claimed runs: the claim, not a leader, decided each one.
        assert len({r["server"] for r in started}) == 2, Counter(r["server"] for r in started)
        assert len({line["pid"] for line in lines}) == 2
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


def test_a_run_whose_server_died_is_marked_failed(postgres: Postgres, tmp_path: Path) -> None:
    url = postgres.new_database()
    first = _server(tmp_path / "a", url)
    second = _server(tmp_path / "b", url)
    log = tmp_path / "runs.jsonl"
    servers = {}
    orphans: list[int] = []
    try:
        first.wait_ready()
        second.wait_ready()
        _register(first, "mortal", log)
        with first.client() as client:
            client.patch(
                "/api/v1/plugins/mortal/schedules/tick",
                json={"cron": "*/3 * * * * *", "timeout_seconds": 120, "config": {"sleep": 120}},
            )
        running = wait_until(
            lambda: [r for r in _runs(first, "mortal") if r["status"] == "running"] or None,
            20,
            first.log,
            what="a running run",
        )[0]
        pid = int(running["server"].split(":")[1])
        servers = {first.proc.pid: first, second.proc.pid: second}
        dying, survivor = servers[pid], next(s for p, s in servers.items() if p != pid)
        orphans = dying.plugin_pids()
        dying.stop(signal.SIGKILL)
        ended = wait_until(
            lambda: next(
                (
                    r
                    for r in _runs(survivor, "mortal")
                    if r["run_id"] == running["run_id"] and r["status"] != "running"
                ),
                None,
            ),
            10,
            survivor.log,
            what="the survivor to mark the run failed",
        )
        assert ended["status"] == "failed"
        assert "the server running it stopped reporting" in ended["error"]
    finally:
        for orphan in orphans:  # a SIGKILLed server cannot stop its plugins
            if pid_alive(orphan):
                os.kill(orphan, signal.SIGKILL)
        for server in (first, second):
            if server.proc.poll() is None:
                assert server.stop() == 0
