#!/usr/bin/env python3
"""custom_endpoint plugin: asks an LLM through Solstice (scope llms.call) and streams the answer's
tokens to the client as server-sent events, one `data:` event per token, then `event: done`.

Route: GET /ask?q=QUESTION (streamed, text/event-stream), with an app key: llms.call spends the
platform's upstream credentials, so a route that relays it must not be open to anyone.
Config: {"llm": "mock"} (the slug of the LLM to ask), {"model": "m"}.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from solstice.sdk import Plugin, pb, respond, route, serve
from solstice.sdk.host import HostError


class LlmStream(Plugin):
    name = "llm-stream"
    version = "1.0.0"
    description = "Streams an LLM's answer to a question as server-sent events."
    scopes = ["llms.call"]
    config_schema = {
        "type": "object",
        "properties": {"llm": {"type": "string", "minLength": 1}, "model": {"type": "string"}},
        "required": ["llm"],
        "additionalProperties": False,
    }

    def configure(self, config: dict[str, Any]) -> None:
        self.llm = str(config["llm"])
        self.model = str(config.get("model", "m"))

    @route("/ask", stream=True, require_auth=True, media_type="text/event-stream")
    async def ask(self, request: pb.EndpointRequest) -> AsyncIterator[bytes | str | pb.HttpResponse]:
        """Streams the answer to ?q=QUESTION."""
        question = parse_qs(request.request.query).get("q", [""])[0]
        if not question:
            yield respond(status=400, media_type="text/plain")
            yield "ask with ?q=your+question\n"
            return
        body = {"model": self.model, "stream": True, "messages": [{"role": "user", "content": question}]}
        try:
            answer = await self.host.llms.stream(self.llm, body)
        except HostError as refused:
            yield respond(status=503, media_type="text/plain")
            yield f"{refused.message}\n"
            return
        if answer.status != 200:
            yield respond(status=502, media_type="text/plain")
            yield f"LLM {self.llm} answered {answer.status}\n"
            return
        async for token in answer.tokens():
            yield f"data: {token}\n\n"
        yield "event: done\ndata: \n\n"


if __name__ == "__main__":
    serve(LlmStream())
