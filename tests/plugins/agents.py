#!/usr/bin/env python3
"""An agent plugin that misbehaves on request, for the tests of the agent route.

The chat message says what it does: "echo" answers the message back in two content chunks with a
thinking chunk first; "tools" adds a tool call and its result; "hang" sends one chunk and never
finishes; "raise" fails with an exception; "no-done" and "garbage" end the stream without DONE,
or send a chunk of no known type (bypassing the SDK, as a plugin without it could); "ask" calls
the first LLM the app may use (or "ask SLUG", that one) and relays its answer or the refusal;
"later SECONDS SLUG" does the same after a wait; "slowfirst PATH" waits a minute before its first
chunk and writes PATH when it is cancelled; "nan" sends metadata with NaN (bypassing the SDK); "who" answers the session id, the app and
the history it got.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import solstice.sdk.servicer as sdk_servicer
from solstice.sdk import Chat, Plugin, agent_error, content, pb, serve, thinking, tool_call, tool_result
from solstice.sdk.host import HostError

_handle = sdk_servicer.PluginServicer.HandleAgentMessage


async def _raw(
    self: sdk_servicer.PluginServicer, request: pb.AgentRequest, context: sdk_servicer.Context
) -> AsyncIterator[pb.AgentChunk]:
    if request.message == "no-done":
        yield pb.AgentChunk(type=pb.AGENT_CHUNK_CONTENT, content="and then")
        return
    if request.message == "nan":
        yield pb.AgentChunk(type=pb.AGENT_CHUNK_TOOL_RESULT, content="x", metadata_json='{"result": NaN}')
        return
    if request.message == "garbage":
        yield pb.AgentChunk(type=99, content="?")  # type: ignore[arg-type]
        return
    async for chunk in _handle(self, request, context):
        yield chunk


sdk_servicer.PluginServicer.HandleAgentMessage = _raw  # type: ignore[method-assign]


class Agents(Plugin):
    name = "agents"
    version = "0.0.1"
    scopes = ["llms.call"]

    async def chat(self, chat: Chat) -> AsyncIterator[pb.AgentChunk | str]:
        if chat.message.startswith("slowfirst "):
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                with open(chat.message.removeprefix("slowfirst "), "w") as marker:
                    marker.write("cancelled")
                raise
        if chat.message.startswith("later "):
            _, seconds, llm = chat.message.split()
            await asyncio.sleep(float(seconds))
            chat = Chat(chat.session_id, f"ask {llm}", chat.history, chat.llms, chat.app, chat.context)
        if chat.message == "hang":
            yield "started"
            await asyncio.sleep(3600)
        if chat.message == "raise":
            raise RuntimeError("/secret/path/internal.py exploded")
        if chat.message == "who":
            yield json.dumps({"session": chat.session_id, "app": chat.app.name, "history": chat.history})
            return
        if chat.message.startswith("ask"):
            llm = chat.message.removeprefix("ask").strip() or chat.llms[0].slug
            try:
                answer = await self.host.llms.call(llm, {"model": "m", "messages": chat.messages()})
            except HostError as refused:
                yield agent_error(f"{refused.code}: {refused.message}")
                return
            yield answer.json()["choices"][0]["message"]["content"]
            return
        yield thinking("echoing")
        if chat.message.startswith("tools"):
            yield tool_call("clock", {"zone": "UTC"})
            yield tool_result("clock", "12:00")
        yield chat.message[: len(chat.message) // 2]
        await asyncio.sleep(0.3)  # the first pieces reach the client before the rest exists
        yield content(chat.message[len(chat.message) // 2 :], {"final": True})


if __name__ == "__main__":
    serve(Agents())
