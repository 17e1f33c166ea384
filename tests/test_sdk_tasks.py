"""Schedules in the SDK and the cron rules they share with the server."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from solstice.control.declared_schedules import read_declared
from solstice.cron import CronError, check_cron
from solstice.protocol import pb
from solstice.sdk import Plugin, Schedule, Task
from solstice.sdk.servicer import PluginServicer
from tests.conftest import settings_error


class Recorder(Plugin):
    name = "recorder"
    schedules = [Schedule(id="hourly", cron="@hourly", config={"a": 1})]

    def __init__(self) -> None:
        self.seen: list[Task] = []

    async def run_task(self, task: Task) -> str | None:
        self.seen.append(task)
        if task.config.get("fail"):
            raise RuntimeError(task.config["fail"])
        return f"ran {task.schedule_id}"


def test_cron_is_read_in_its_time_zone() -> None:
    paris = check_cron("0 3 * * *", "Europe/Paris")
    # 03:00 in Paris: 02:00 UTC in winter, 01:00 UTC in summer.
    assert paris.next_after(datetime(2026, 1, 10, 12, tzinfo=UTC)) == datetime(2026, 1, 11, 2, tzinfo=UTC)
    assert paris.next_after(datetime(2026, 7, 10, 12, tzinfo=UTC)) == datetime(2026, 7, 11, 1, tzinfo=UTC)
    seconds = check_cron("*/15 * * * * *")
    assert seconds.next_after(datetime(2026, 1, 1, 0, 0, 14, tzinfo=UTC)) == datetime(
        2026, 1, 1, 0, 0, 15, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("cron", "zone", "message"),
    [
        ("* * * *", "UTC", "has 4 fields"),
        ("* * * * * * *", "UTC", "has 7 fields"),
        ("0 25 * * *", "UTC", "cron '0 25 * * *' is not valid"),
        ("0 0 31 2 *", "UTC", "is not valid"),
        ("@often", "UTC", "cron '@often' is not a known macro; use one of @yearly"),
        ("* * * * *", "Nowhere/City", "timezone 'Nowhere/City' is not a known IANA time zone"),
        # A directory of the zone database, and a name whose meaning depends on the host.
        ("* * * * *", "America", "timezone 'America' is not a known IANA time zone"),
        ("* * * * *", "localtime", "timezone 'localtime' is not a known IANA time zone"),
        ("R R * * *", "UTC", "uses 'R', a random value"),
        ("H(0-29) * * * *", "UTC", "uses 'H(0', a random value"),
        (
            ",".join(map(str, range(60))) + " " + ",".join(map(str, range(24))) + " * * *",
            "UTC",
            "cron of 237 characters is too long",
        ),
    ],
)
def test_unusable_cron_is_refused_with_the_value(cron: str, zone: str, message: str) -> None:
    with pytest.raises(CronError, match=re.escape(message)):
        check_cron(cron, zone)


def test_a_bad_declaration_fails_the_plugin_at_start() -> None:
    with pytest.raises(CronError, match="cron '61 \\* \\* \\* \\*' is not valid"):
        Schedule(id="x", cron="61 * * * *")
    with pytest.raises(CronError, match="schedule id 'Has Space' is not valid"):
        Schedule(id="Has Space", cron="@daily")
    with pytest.raises(CronError, match="timeout_seconds 0 is out of range"):
        Schedule(id="x", cron="@daily", timeout_seconds=0)
    with pytest.raises(CronError, match="catch_up must be true or false, not 'yes'"):
        Schedule(id="x", cron="@daily", catch_up="yes")  # type: ignore[arg-type]
    with pytest.raises(CronError, match="config cannot be sent as JSON"):
        Schedule(id="x", cron="@daily", config={"when": datetime.now(UTC)})

    class Forgetful(Plugin):
        schedules = [Schedule(id="x", cron="@daily")]

    with pytest.raises(TypeError, match="declares schedules but does not implement run_task"):
        PluginServicer(Forgetful())


async def test_info_declares_the_schedules_and_requests_the_scope() -> None:
    info = await PluginServicer(Recorder()).GetInfo(pb.GetInfoRequest(), None)  # type: ignore[arg-type]
    assert list(info.scopes) == ["schedules.run"]
    assert list(info.hooks) == [pb.HOOK_SCHEDULED_TASK]
    [declared] = info.schedules
    assert (declared.id, declared.cron, declared.timezone, json.loads(declared.config_json)) == (
        "hourly",
        "@hourly",
        "UTC",
        {"a": 1},
    )
    usable, warnings = read_declared("recorder", info.schedules)
    assert [s.key for s in usable] == ["hourly"] and warnings == []


def test_the_server_warns_about_declarations_it_cannot_use() -> None:
    declared = [
        pb.Schedule(id="ok", cron="@daily"),
        pb.Schedule(id="ok", cron="@hourly"),
        pb.Schedule(id="bad", cron="every day"),
        pb.Schedule(id="cfg", cron="@daily", config_json="[1]"),
        pb.Schedule(id="slow", cron="@daily", timeout_seconds=10**6),
    ]
    usable, warnings = read_declared("p", declared)
    assert [(s.key, s.cron) for s in usable] == [("ok", "@daily")]
    assert len(warnings) == 4
    assert "declares schedule ok twice" in warnings[0]
    assert "cron 'every day'" in warnings[1]
    assert "config_json must be a JSON object" in warnings[2]
    assert "timeout_seconds 1000000 is out of range" in warnings[3]


class _Context:
    """The little of grpc.aio's context that RunTask uses."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    async def abort(self, code: Any, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")


async def test_run_task_hands_the_run_over_and_reports_failures_as_results() -> None:
    plugin = Recorder()
    servicer = PluginServicer(plugin)
    context: Any = _Context()
    await servicer.Configure(pb.ConfigureRequest(config_json="{}"), context)
    request = pb.TaskRequest(
        context=pb.RequestContext(request_id="run-1"),
        schedule_id="hourly",
        schedule_name="Hourly",
        config_json='{"a": 2}',
        due_unix_ms=1_800_000_000_000,
        catch_up=True,
    )
    result = await servicer.RunTask(request, context)
    assert (result.error, result.message) == ("", "ran hourly")
    [task] = plugin.seen
    assert (task.run_id, task.config, task.catch_up) == ("run-1", {"a": 2}, True)
    assert task.due == datetime.fromtimestamp(1_800_000_000, UTC)
    request.config_json = '{"fail": "no disk"}'
    failed = await servicer.RunTask(request, context)
    assert failed.error == "RuntimeError: no disk"
    request.config_json = "[]"
    assert "not a JSON object" in (await servicer.RunTask(request, context)).error


async def test_a_plain_run_task_runs_in_a_thread() -> None:
    class Blocking(Plugin):
        def run_task(self, task: Task) -> str:
            time.sleep(0.05)  # would stall every other call if it ran on the event loop
            return f"thread {threading.get_ident()}"

    servicer = PluginServicer(Blocking())
    context: Any = _Context()
    await servicer.Configure(pb.ConfigureRequest(config_json="{}"), context)
    result = await servicer.RunTask(pb.TaskRequest(context=pb.RequestContext(request_id="r")), context)
    assert result.error == "" and result.message != f"thread {threading.get_ident()}"


def test_the_grace_outlasts_two_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(
        monkeypatch, SOLSTICE_SCHEDULE_INTERVAL="10", SOLSTICE_SCHEDULE_MISFIRE_GRACE="15"
    )
    assert message == (
        "SOLSTICE_SCHEDULE_MISFIRE_GRACE=15.0 is invalid: must be more than twice the schedule interval (10 s), "
        "or runs on time count as missed; correct or unset it"
    )
