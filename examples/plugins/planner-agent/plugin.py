#!/usr/bin/env python3
"""agent plugin: plans with one LLM call, then streams its answer from a second, at
/agents/SLUG/chat. Both calls go through Solstice (scope llms.call), so they pass the LLM's hooks,
keys and data collection like any app's.

Chunks: one `thinking` with the plan, then `content` token by token, then `done`.
Config: {"llm": "SLUG"} (optional: else the first LLM the calling app may use), {"model": "m"}.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from solstice.sdk import Chat, Plugin, agent_error, pb, serve, thinking

PLANNER = "Write a short plan for answering the user's last message."


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
        async for token in answer.tokens():
            yield token


if __name__ == "__main__":
    serve(PlannerAgent())
