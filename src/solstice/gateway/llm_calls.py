"""llms.call: a plugin's request to an LLM through the gateway, answered as service replies."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator

from starlette.responses import Response, StreamingResponse

from solstice.gateway.proxy import Gateway, LlmCallRefused
from solstice.host import refusal
from solstice.protocol import pb


def _head(response: Response) -> pb.LlmCallPart:
    raw = response.raw_headers
    headers = [pb.Header(name=k.decode("latin-1"), value=v.decode("latin-1")) for k, v in raw]
    return pb.LlmCallPart(status=response.status_code, headers=headers)


# How deep llms.calls may nest: a call made by a plugin serving a request that another plugin's
# call made, and so on. Deeper chains are refused, as is any chain that comes back to a plugin in it.
MAX_CALL_DEPTH = 4


def _loop_refusal(chain: tuple[str, ...]) -> str | None:
    caller = chain[-1]
    if caller in chain[:-1]:
        return (
            f"plugin {caller}'s llms.call would loop: it serves a request that its own llms.call started "
            f"({' -> '.join(chain)}); a hook must not call an LLM whose hooks call back into it"
        )
    if len(chain) > MAX_CALL_DEPTH:
        return (
            f"llms.call is nested {len(chain)} deep ({' -> '.join(chain)}); Solstice allows "
            f"{MAX_CALL_DEPTH}, so that plugins calling LLMs from their hooks cannot loop"
        )
    return None


class GatewayLlmCalls:
    """The LlmCaller of a runtime: each call runs the gateway's pipeline as the calling plugin."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        # The plugins behind each request made by llms.call, while it runs: request id -> callers.
        # Kept here, not taken from the plugin, which names only the request it serves.
        self._chains: dict[str, tuple[str, ...]] = {}

    async def call(self, caller: str, call: pb.LlmCall) -> AsyncGenerator[pb.ServiceReply, None]:
        """The answer as one reply, or (`call.stream`) the head, each body piece, then an empty last reply."""
        chain = (*self._chains.get(call.origin_request_id, ()), caller)
        problem = _loop_refusal(chain)
        if problem is not None:
            yield refusal("FAILED_PRECONDITION", problem)
            return
        outside = self._outside_turn(caller, call)
        if outside is not None:
            yield refusal("PERMISSION_DENIED", outside)
            return
        request_id = uuid.uuid4().hex
        self._chains[request_id] = chain
        try:
            async with contextlib.aclosing(self._answer(caller, call, request_id)) as replies:
                async for reply in replies:
                    yield reply
        finally:
            del self._chains[request_id]

    def _outside_turn(self, caller: str, call: pb.LlmCall) -> str | None:
        """An agent answering a chat turn may call only the LLMs its app may use now."""
        grant = self.gateway.agents.turns.get(call.origin_request_id)
        if grant is None or grant.agent != caller:
            return None
        config = self.gateway.state.config
        app = config.apps_by_id.get(grant.app_id)
        if app is None or not app.is_active or caller not in app.agents:
            return (
                f"the app whose chat agent {caller} answers may no longer use it, "
                "so the turn's calls are refused"
            )
        route = config.routes.get(call.llm) or next(
            (r for r in config.routes.values() if str(r.id) == call.llm), None
        )
        if route is not None and route.id in app.llm_ids:
            return None
        return (
            f"app {app.name!r} may not use LLM {call.llm}, so agent {caller} may not call it for this chat; "
            "add the LLM to the app's llms"
        )

    async def _answer(
        self, caller: str, call: pb.LlmCall, request_id: str
    ) -> AsyncGenerator[pb.ServiceReply, None]:
        try:
            response = await self.gateway.call_as_plugin(caller, call, request_id)
        except LlmCallRefused as refused:
            yield refusal(refused.code, str(refused))
            return
        head = _head(response)
        if not isinstance(response, StreamingResponse):
            head.body = bytes(response.body)
            yield pb.ServiceReply(llm_call=head)
            return
        pieces = response.body_iterator
        try:
            if call.stream:
                yield pb.ServiceReply(llm_call=head, more=True)
                async for piece in pieces:
                    yield pb.ServiceReply(llm_call=pb.LlmCallPart(body=_bytes(piece)), more=True)
                yield pb.ServiceReply(llm_call=pb.LlmCallPart())
                return
            # Asked for whole: gathered up to the gateway's response limit, as a client's would be.
            limit = self.gateway.settings.gateway_max_response_bytes
            body = bytearray()
            async for piece in pieces:
                body += _bytes(piece)
                if len(body) > limit:
                    yield refusal(
                        "RESOURCE_EXHAUSTED",
                        f"the answer of LLM {call.llm} is over {limit} bytes; call it with stream set",
                    )
                    return
            head.body = bytes(body)
            yield pb.ServiceReply(llm_call=head)
        finally:
            # The relay's own cleanup (records, the upstream connection) runs when it is closed,
            # also when the plugin cancels the call half-way.
            close = getattr(pieces, "aclose", None)
            if close is not None:
                await close()


def _bytes(piece: str | bytes | memoryview) -> bytes:
    return piece.encode() if isinstance(piece, str) else bytes(piece)
