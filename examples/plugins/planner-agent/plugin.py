#!/usr/bin/env python3
"""agent plugin: plans with one LLM call, then streams its answer from a second, at
/agents/SLUG/chat. Both calls go through Solstice (scope llms.call), so they pass the LLM's hooks,
keys and data collection like any app's.

Chunks: one `thinking` with the plan, then `content` token by token, then `done`.
Config: {"llm": "SLUG"} (optional: else the first LLM the calling app may use), {"model": "m"}.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from solstice.sdk import Chat, Plugin, agent_error, pb, serve, thinking

PLANNER = "Write a short plan for answering the user's last message."


def tokens_of(events: bytes) -> tuple[list[str], bytes]:
    """The content tokens of the complete server-sent events in `events`, and the incomplete rest."""
    *complete, rest = events.split(b"\n\n")
    found = []
    for event in complete:
        for line in event.split(b"\n"):
            data = line.removeprefix(b"data: ")
            if line.startswith(b"data: ") and data.strip() != b"[DONE]":
                for choice in json.loads(data).get("choices", []):
                    if text := choice.get("delta", {}).get("content"):
                        found.append(text)
    return found, rest


class PlannerAgent(Plugin):
    name = "planner-agent"
    version = "1.0.0"
    description = "Plans with one LLM call, then streams the answer of a second."
    scopes = ["llms.call"]
    config_schema = {
        "type": "object",
        "properties": {"llm": {"type": "string", "minLength": 1}, "model": {"type": "string"}},
        "additionalProperties": False,
    }

    def configure(self, config: dict[str, Any]) -> None:
        self.llm = str(config.get("llm", ""))
        self.model = str(config.get("model", "m"))

    async def chat(self, chat: Chat) -> AsyncIterator[pb.AgentChunk | str]:
        """Plan, then answer token by token."""
        allowed = [llm.slug for llm in chat.llms]
        llm = self.llm or (allowed[0] if allowed else "")
        if llm not in allowed:
            yield agent_error(f"this app may not use LLM {llm or '(none)'}; ask an operator to allow one")
            return
        planned = await self.host.llms.call(
            llm, {"model": self.model, "messages": chat.messages(system=PLANNER)}
        )
        if planned.status != 200:
            yield agent_error(f"LLM {llm} answered {planned.status} while planning")
            return
        plan = planned.json()["choices"][0]["message"]["content"]
        yield thinking(plan)
        body = {
            "model": self.model,
            "stream": True,
            "messages": chat.messages(system=f"Follow this plan: {plan}"),
        }
        answer = await self.host.llms.stream(llm, body)
        if answer.status != 200:
            yield agent_error(f"LLM {llm} answered {answer.status}")
            return
        pending = b""
        async for piece in answer:
            found, pending = tokens_of(pending + piece)
            for token in found:
                yield token


if __name__ == "__main__":
    serve(PlannerAgent())
