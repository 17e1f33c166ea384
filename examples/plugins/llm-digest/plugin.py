#!/usr/bin/env python3
"""Scheduled task plugin: at each due time of its schedule, asks an LLM through Solstice for a
digest (scope llms.call), keeps the answer (scope kv.readwrite), and serves the newest one.

Schedule: "digest", every 10 minutes (operators change it at /api/v1/plugins/SLUG/schedules);
a schedule's config may set {"prompt": "..."}.
Route: GET /latest (app key required): the newest digest and when it was made.
Config: {"llm": "mock"} (the slug of the LLM to ask), {"model": "m"}.
"""

from __future__ import annotations

import json
from typing import Any

from solstice.sdk import Plugin, Schedule, Task, pb, respond, route, serve

PROMPT = "Summarise what changed today in three lines."


class LlmDigest(Plugin):
    name = "llm-digest"
    version = "1.0.0"
    description = "Writes an LLM digest on a schedule and serves the newest one."
    scopes = ["llms.call", "kv.readwrite"]
    schedules = (Schedule(id="digest", name="Digest", cron="*/10 * * * *", config={"prompt": PROMPT}),)
    config_schema = {
        "type": "object",
        "properties": {"llm": {"type": "string", "minLength": 1}, "model": {"type": "string"}},
        "required": ["llm"],
        "additionalProperties": False,
    }

    def configure(self, config: dict[str, Any]) -> None:
        self.llm = str(config["llm"])
        self.model = str(config.get("model", "m"))

    async def run_task(self, task: Task) -> str:
        """Ask the LLM; a refusal or an error status fails the run with its reason."""
        prompt = str(task.config.get("prompt", PROMPT))
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}]}
        answer = await self.host.llms.call(self.llm, body)
        if answer.status != 200:
            raise RuntimeError(f"LLM {self.llm} answered {answer.status}")
        text = answer.json()["choices"][0]["message"]["content"]
        digest = {"text": text, "due": task.due.isoformat(), "run_id": task.run_id}
        await self.host.kv.put("latest", json.dumps(digest))
        return f"{len(text)} characters from {self.llm}"

    @route("/latest", require_auth=True)
    async def latest(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        """The newest digest, or 404 before the first run."""
        found = await self.host.kv.get("latest")
        if found is None:
            return respond(
                json={"error": "no digest yet; the first is made at the schedule's next due time"}, status=404
            )
        return respond(json=json.loads(found))


if __name__ == "__main__":
    serve(LlmDigest())
