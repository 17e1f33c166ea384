#!/usr/bin/env python3
"""A plugin with a scheduled task, for the tests of schedules.

SCHEDULED_CRON (environment): the cron of its declared schedule "tick" (default every 2 s);
SCHEDULED_CATCH_UP=1 declares it with catch_up. Each run appends one JSON line to the file named
by the plugin's config "log": run id, schedule, due time, catch_up, config and this process's pid;
then it stores the run id in its KV data ("run-<id>"). A schedule's config may say
{"sleep": seconds} (wait first), {"fail": "text"} (raise) or {"summary": "text"} (answer it).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from solstice.sdk import Plugin, Schedule, Task, serve


class Scheduled(Plugin):
    name = "scheduled"
    version = "0.0.1"
    scopes = ["kv.readwrite"]
    schedules = [
        Schedule(
            id="tick",
            name="Every tick",
            cron=os.environ.get("SCHEDULED_CRON", "*/2 * * * * *"),
            config={"from": "declaration"},
            catch_up=os.environ.get("SCHEDULED_CATCH_UP") == "1",
        )
    ]

    def configure(self, config: dict[str, Any]) -> None:
        self.log = str(config.get("log", os.devnull))

    async def run_task(self, task: Task) -> str | None:
        with open(self.log, "a") as out:
            line = {
                "run_id": task.run_id,
                "schedule": task.schedule_id,
                "due": task.due.timestamp(),
                "catch_up": task.catch_up,
                "config": task.config,
                "pid": os.getpid(),
            }
            out.write(json.dumps(line) + "\n")
        await asyncio.sleep(float(task.config.get("sleep", 0)))
        if "fail" in task.config:
            raise RuntimeError(task.config["fail"])
        await self.host.kv.put(f"run-{task.run_id}", b"done")
        return task.config.get("summary")


if __name__ == "__main__":
    serve(Scheduled())
