"""The agent route POST /agents/{slug}/chat: an app's chat turn to an agent plugin, its answer relayed
as server-sent events, one per chunk, as the plugin produces them.

The caller keeps the conversation: it sends the earlier turns (`history`) with each message, and a
`session_id` of its choosing (one is made for a first turn and returned in `x-session-id`).
Solstice stores no conversation, so any server or edge can answer any turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from solstice import safejson
from solstice.gateway.http import app_for_key, credential_of, read_limited
from solstice.gateway.openai_errors import openai_error
from solstice.gateway.pipeline import Unauthorized
from solstice.gateway.routes import ConfigHolder
from solstice.host import PluginCallError, PluginHost, PluginNotLoadedError
from solstice.metrics import AGENT_CHATS
from solstice.protocol import pb
from solstice.settings import Settings

log = structlog.get_logger("solstice.gateway")

MAX_HISTORY = 200
MAX_METADATA_CHARS = 64 << 10
_SESSION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ROLES = ("user", "assistant")
# Event names, by chunk type; DONE and ERROR end an answer.
_EVENTS = {
    pb.AGENT_CHUNK_CONTENT: "content",
    pb.AGENT_CHUNK_TOOL_CALL: "tool_call",
    pb.AGENT_CHUNK_TOOL_RESULT: "tool_result",
    pb.AGENT_CHUNK_THINKING: "thinking",
    pb.AGENT_CHUNK_ERROR: "error",
    pb.AGENT_CHUNK_DONE: "done",
}
_ENDS = (pb.AGENT_CHUNK_DONE, pb.AGENT_CHUNK_ERROR)


@dataclass(frozen=True)
class TurnGrant:
    """Whose turn an agent answers: its llms.calls for it are held to that app's LLMs, as they are
    when each call is made."""

    agent: str
    app_id: int


class BadTurn(ValueError):
    """A chat request body that cannot be used; the message says why."""


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def read_turn(body: bytes) -> tuple[str, str | None, list[pb.AgentTurn]]:
    """The message, session id and history of a chat request body, or BadTurn."""
    try:
        data = safejson.parse(body) if body.strip() else None
    except safejson.JSONValueError as exc:
        raise BadTurn(safejson.body_refusal(exc)) from None
    if not isinstance(data, dict):
        raise BadTurn('send a JSON object: {"message": "...", "session_id": "...", "history": [...]}')
    unknown = sorted(set(data) - {"message", "session_id", "history"})
    if unknown:
        raise BadTurn(f"unknown field {unknown[0]!r}; send message, session_id and history")
    message = data.get("message")
    if not isinstance(message, str) or not message.strip():
        raise BadTurn("message must be a non-empty string")
    session = data.get("session_id")
    if session is not None and not (isinstance(session, str) and _SESSION_ID.fullmatch(session)):
        raise BadTurn("session_id must be 1 to 128 letters, digits, '.', '_', ':' or '-'")
    history = data.get("history", [])
    if not isinstance(history, list) or len(history) > MAX_HISTORY:
        raise BadTurn(f"history must be a list of at most {MAX_HISTORY} turns")
    turns = []
    for number, turn in enumerate(history):
        if (
            not isinstance(turn, dict)
            or set(turn) != {"role", "content"}
            or turn["role"] not in _ROLES
            or not isinstance(turn["content"], str)
        ):
            raise BadTurn(f'history[{number}] must be {{"role": "user" or "assistant", "content": "..."}}')
        turns.append(pb.AgentTurn(role=turn["role"], content=turn["content"]))
    try:
        # Lone surrogates (\ud800 in the JSON) are no text: protobuf cannot carry them.
        for text in (message, *(turn.content for turn in turns)):
            text.encode()
    except UnicodeEncodeError:
        raise BadTurn(
            "message and history must be text: a lone surrogate (\\ud800 to \\udfff) is not"
        ) from None
    return message, session, turns


class AgentChats:
    """Serves the agents of the current GatewayConfig."""

    def __init__(self, settings: Settings, state: ConfigHolder, host: PluginHost) -> None:
        self.settings = settings
        self.state = state
        self.host = host
        # The turns being answered, by request id: llms.calls made for one are held to its app's LLMs.
        self.turns: dict[str, TurnGrant] = {}

    async def handle(self, request: Request) -> Response:
        """Answer one POST /agents/{slug}/chat."""
        slug = request.path_params["slug"]
        config = self.state.config
        if slug not in config.agent_plugins:
            return openai_error(
                404,
                f"no active agent {slug!r}; register the plugin with hook_types including agent",
                "agent_not_found",
            )
        body, problem = await read_limited(request, self.settings.gateway_max_body_bytes)
        if problem is not None:
            return problem
        try:
            app = app_for_key(config, credential_of(request))
        except Unauthorized as refusal:
            return openai_error(refusal.status, str(refusal))
        if not app.is_active:
            return openai_error(401, f"app {app.name!r} is inactive")
        if slug not in app.agents:
            return openai_error(
                403,
                f"app {app.name!r} may not use agent {slug}; add it to the app's agents",
                "agent_not_allowed",
            )
        try:
            message, session, history = read_turn(body)
        except BadTurn as exc:
            return openai_error(400, str(exc))
        session = session or uuid.uuid4().hex
        # The turn's own id, never the client's X-Request-ID: llms.calls made for it name it.
        turn_id = uuid.uuid4().hex
        log.info("agent turn", plugin=slug, turn=turn_id, app=app.name)
        llms = [
            route
            for route in sorted(config.routes.values(), key=lambda r: r.slug)
            if route.id in app.llm_ids and route.is_active
        ]
        turn = pb.AgentRequest(
            context=pb.RequestContext(
                request_id=turn_id,
                app=pb.App(id=str(app.id), name=app.name),
                trace=pb.TraceContext(
                    traceparent=request.headers.get("traceparent", ""),
                    tracestate=request.headers.get("tracestate", ""),
                ),
            ),
            session_id=session,
            message=message,
            history=history,
            llms=[
                pb.LlmInfo(id=str(r.id), slug=r.slug, name=r.name, vendor=r.vendor, is_active=r.is_active)
                for r in llms
            ],
        )
        timeout = self.settings.plugin_endpoint_stream_timeout
        try:
            chunks = self.host.client(slug).handle_agent(turn, timeout)
        except PluginNotLoadedError:  # being deactivated or deleted
            return openai_error(
                503, f"agent {slug} is not available; try again shortly", "plugin_unavailable"
            )
        self.turns[turn_id] = TurnGrant(slug, app.id)
        try:
            first = await _first_unless_gone(request, chunks)
        except PluginCallError as error:
            self.turns.pop(turn_id, None)
            AGENT_CHATS.labels(slug, "failed").inc()
            return self._failure(slug, error, timeout)
        except ClientGone:
            self.turns.pop(turn_id, None)
            AGENT_CHATS.labels(slug, "disconnected").inc()
            return Response(status_code=499)  # nobody reads it: the client left before the answer began
        except BaseException:
            self.turns.pop(turn_id, None)
            raise
        # x-accel-buffering: proxies such as nginx would otherwise hold the events back.
        headers = {"x-session-id": session, "cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(
            self._relay(slug, session, turn_id, first, chunks, timeout),
            media_type="text/event-stream",
            headers=headers,
        )

    def _failure(self, slug: str, error: PluginCallError, timeout: float) -> Response:
        log.warning("agent call failed", plugin=slug, code=error.code, error=str(error))
        if error.code == "DEADLINE_EXCEEDED":
            return openai_error(504, f"agent {slug} did not answer within {timeout:g} s", "plugin_timeout")
        if error.code in ("UNAVAILABLE", "CANCELLED"):
            return openai_error(
                503, f"agent {slug} is not available; try again shortly", "plugin_unavailable"
            )
        return openai_error(502, f"agent {slug} failed to answer", "plugin_failed")

    async def _relay(
        self,
        slug: str,
        session: str,
        turn_id: str,
        first: pb.AgentChunk | None,
        chunks: AsyncGenerator[pb.AgentChunk, None],
        timeout: float,
    ) -> AsyncIterator[bytes]:
        # Runs while the answer streams: a failure now is told as an error event, then the end. A
        # client that leaves closes this generator: "disconnected" unless the answer had ended.
        outcome = "disconnected"
        async with contextlib.aclosing(chunks):
            try:
                chunk = first
                while chunk is not None:
                    name = _EVENTS.get(chunk.type)
                    metadata = _metadata(chunk.metadata_json)
                    if name is None or metadata is None:
                        log.warning("agent sent a malformed chunk", plugin=slug, type=int(chunk.type))
                        outcome = "malformed"
                        yield _event("error", {"content": f"agent {slug} sent a malformed answer"})
                        return
                    data: dict[str, Any] = {"content": chunk.content}
                    if metadata:
                        data["metadata"] = metadata
                    if chunk.type == pb.AGENT_CHUNK_DONE:
                        data["session_id"] = session
                    yield _event(name, data)
                    if chunk.type in _ENDS:
                        outcome = name
                        return
                    chunk = await anext(chunks, None)
                outcome = "incomplete"
                yield _event("error", {"content": f"agent {slug} ended its answer without finishing it"})
            except PluginCallError as error:
                log.warning("agent stream ended early", plugin=slug, code=error.code, error=str(error))
                late = error.code == "DEADLINE_EXCEEDED"
                outcome = "timeout" if late else "failed"
                text = (
                    f"agent {slug} did not finish within {timeout:g} s"
                    if late
                    else f"agent {slug} failed to answer"
                )
                yield _event("error", {"content": text})
            finally:
                self.turns.pop(turn_id, None)
                AGENT_CHATS.labels(slug, outcome).inc()


def _metadata(text: str) -> dict[str, Any] | None:
    """A chunk's metadata as an object ({} when empty); None when it is not one that JSON clients
    can read: not an object, NaN or infinite numbers, nested too deep, or over 64 KiB."""
    if not text:
        return {}
    if len(text) > MAX_METADATA_CHARS:
        return None
    try:
        value = safejson.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class ClientGone(Exception):
    """The client disconnected before the agent's answer began."""


async def _first_unless_gone(
    request: Request, chunks: AsyncGenerator[pb.AgentChunk, None]
) -> pb.AgentChunk | None:
    """The first chunk; ClientGone when the client disconnects first (the agent's call is cancelled)."""
    first = asyncio.ensure_future(anext(chunks, None))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((first, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if first.done():
        return first.result()
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError, PluginCallError):
        await first
    await chunks.aclose()
    raise ClientGone


async def _disconnected(request: Request) -> None:
    # The body was read whole before: what comes next is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
