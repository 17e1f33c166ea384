"""What a schedule is, checked: from a plugin's declaration (PluginInfo.schedules) or from the API."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from solstice.cron import DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S, CronError, check_cron, check_schedule_id
from solstice.protocol import pb


@dataclass(frozen=True)
class ScheduleFields:
    """A schedule's settings as stored: its id within the plugin, timing, deadline and config."""

    key: str
    cron: str
    timezone: str
    name: str = ""
    timeout_s: int = DEFAULT_TIMEOUT_S
    config: dict[str, Any] = field(default_factory=dict)
    catch_up: bool = False

    def values(self) -> dict[str, Any]:
        """The columns of a schedule row."""
        return {
            "key": self.key,
            "name": self.name or self.key,
            "cron": self.cron,
            "timezone": self.timezone,
            "timeout_s": self.timeout_s,
            "config": dict(self.config),
            "catch_up": self.catch_up,
        }


def next_due(cron: str, timezone: str, now: datetime) -> datetime:
    """The first due time of a stored schedule after `now`."""
    return check_cron(cron, timezone).next_after(now)


def check_timeout(seconds: int) -> int:
    """`seconds` if it can be a run's deadline, else CronError."""
    if not 1 <= seconds <= MAX_TIMEOUT_S:
        raise CronError(f"timeout_seconds {seconds} is out of range; use 1 to {MAX_TIMEOUT_S}")
    return seconds


def declared(schedule: pb.Schedule) -> ScheduleFields:
    """A schedule a plugin declared, checked; CronError says what is wrong with it."""
    key = check_schedule_id(schedule.id)
    cron = check_cron(schedule.cron, schedule.timezone)
    try:
        config = json.loads(schedule.config_json) if schedule.config_json else {}
    except json.JSONDecodeError as exc:
        raise CronError(f"schedule {key}: config_json is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise CronError(f"schedule {key}: config_json must be a JSON object, got {type(config).__name__}")
    return ScheduleFields(
        key=key,
        cron=cron.expression,
        timezone=cron.timezone,
        name=schedule.name[:200],
        timeout_s=check_timeout(schedule.timeout_seconds or DEFAULT_TIMEOUT_S),
        config=config,
        catch_up=schedule.catch_up,
    )
