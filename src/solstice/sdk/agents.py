"""Agents in the plugin SDK: the chat turn a plugin is handed, and the chunks it answers with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from solstice import safejson
from solstice.protocol import pb


@dataclass(frozen=True)
class Chat:
    """One chat turn, as `Plugin.chat` receives it."""

    session_id: str
    message: str
    # The conversation before this message, oldest first: (role, content) with role user or assistant.
    history: list[tuple[str, str]]
    # The active LLMs the calling app may use: call them with self.host.llms (scope llms.call).
    llms: list[pb.LlmInfo]
    # The app whose key was checked.
    app: pb.App
    context: pb.RequestContext

    @classmethod
    def from_request(cls, request: pb.AgentRequest) -> Chat:
        """The turn an AgentRequest describes."""
        return cls(
            session_id=request.session_id,
            message=request.message,
            history=[(turn.role, turn.content) for turn in request.history],
            llms=list(request.llms),
            app=request.context.app,
            context=request.context,
        )

    def messages(self, system: str = "") -> list[dict[str, str]]:
        """The conversation as chat-completions messages: the system prompt, the history, the message."""
        head = [{"role": "system", "content": system}] if system else []
        past = [{"role": role, "content": content} for role, content in self.history]
        return [*head, *past, {"role": "user", "content": self.message}]


def _chunk(kind: pb.AgentChunkType, content: str, metadata: Mapping[str, Any] | None) -> pb.AgentChunk:
    return pb.AgentChunk(
        type=kind, content=content, metadata_json=safejson.dumps(dict(metadata)) if metadata else ""
    )


def content(text: str, metadata: Mapping[str, Any] | None = None) -> pb.AgentChunk:
    """A piece of the answer's text (yielding a str does the same)."""
    return _chunk(pb.AGENT_CHUNK_CONTENT, text, metadata)


def thinking(text: str, metadata: Mapping[str, Any] | None = None) -> pb.AgentChunk:
    """The agent's reasoning, shown apart from the answer."""
    return _chunk(pb.AGENT_CHUNK_THINKING, text, metadata)


def tool_call(name: str, arguments: Mapping[str, Any]) -> pb.AgentChunk:
    """A tool the agent calls, with its arguments."""
    return _chunk(pb.AGENT_CHUNK_TOOL_CALL, name, {"name": name, "arguments": dict(arguments)})


def tool_result(name: str, result: Any) -> pb.AgentChunk:
    """What a tool gave back (any JSON value)."""
    return _chunk(pb.AGENT_CHUNK_TOOL_RESULT, name, {"name": name, "result": result})


def agent_error(message: str) -> pb.AgentChunk:
    """End the answer with an error the user sees: one sentence, no internals."""
    return _chunk(pb.AGENT_CHUNK_ERROR, message, None)
