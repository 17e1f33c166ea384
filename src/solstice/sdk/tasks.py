"""Scheduled tasks in the plugin SDK: the schedules a plugin declares and the run it is handed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from solstice.cron import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_TIMEZONE,
    MAX_TIMEOUT_S,
    CronError,
    check_cron,
    check_schedule_id,
)
from solstice.protocol import pb


@dataclass(frozen=True)
class Schedule:
    """A schedule the plugin wants: `run_task` is called at each due time of `cron` in `timezone`.

    `cron` has five fields, six with seconds first, or is a macro such as "@hourly". Operators
    may change or disable it through the API; their values win over the declaration from then on.
    """

    id: str
    cron: str
    name: str = ""
    timezone: str = DEFAULT_TIMEZONE
    timeout_seconds: int = DEFAULT_TIMEOUT_S
    config: Mapping[str, Any] = field(default_factory=dict)
    catch_up: bool = False

    def __post_init__(self) -> None:
        # A bad declaration fails the plugin's start here, with the value named.
        check_schedule_id(self.id)
        check_cron(self.cron, self.timezone)
        if isinstance(self.timeout_seconds, bool) or not isinstance(self.timeout_seconds, int):
            raise CronError(f"schedule {self.id}: timeout_seconds must be a whole number of seconds")
        if not 1 <= self.timeout_seconds <= MAX_TIMEOUT_S:
            raise CronError(
                f"schedule {self.id}: timeout_seconds {self.timeout_seconds} is out of range; "
                f"use 1 to {MAX_TIMEOUT_S}"
            )
        if not isinstance(self.catch_up, bool):
            raise CronError(f"schedule {self.id}: catch_up must be true or false, not {self.catch_up!r}")
        if not isinstance(self.config, Mapping):
            raise CronError(f"schedule {self.id}: config must be a mapping, not {type(self.config).__name__}")
        try:
            json.dumps(dict(self.config), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise CronError(f"schedule {self.id}: config cannot be sent as JSON ({exc})") from None

    def as_message(self) -> pb.Schedule:
        """The schedule as GetInfo reports it."""
        return pb.Schedule(
            id=self.id,
            name=self.name,
            cron=self.cron,
            timezone=self.timezone,
            timeout_seconds=self.timeout_seconds,
            config_json=json.dumps(dict(self.config)),
            catch_up=self.catch_up,
        )


@dataclass(frozen=True)
class Task:
    """One due run of a schedule, as `Plugin.run_task` receives it."""

    run_id: str
    schedule_id: str
    schedule_name: str
    config: dict[str, Any]
    due: datetime
    # The run is a late one: its due time was missed while no server ran, and catch_up is on.
    catch_up: bool
    context: pb.RequestContext

    @classmethod
    def from_request(cls, request: pb.TaskRequest) -> Task:
        """The run a TaskRequest describes; ValueError when its config is not a JSON object."""
        config = json.loads(request.config_json) if request.config_json else {}
        if not isinstance(config, dict):
            raise ValueError(f"the schedule's config is a {type(config).__name__}, not a JSON object")
        return cls(
            run_id=request.context.request_id,
            schedule_id=request.schedule_id,
            schedule_name=request.schedule_name,
            config=config,
            due=datetime.fromtimestamp(request.due_unix_ms / 1000, UTC),
            catch_up=request.catch_up,
            context=request.context,
        )
