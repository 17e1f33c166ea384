"""llms.call: a plugin's request to an LLM through the gateway, answered as service replies."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import Response, StreamingResponse

from solstice.gateway.proxy import Gateway, LlmCallRefused
from solstice.host import refusal
from solstice.protocol import pb


def _head(response: Response) -> pb.LlmCallPart:
    raw = response.raw_headers
    headers = [pb.Header(name=k.decode("latin-1"), value=v.decode("latin-1")) for k, v in raw]
    return pb.LlmCallPart(status=response.status_code, headers=headers)


class GatewayLlmCalls:
    """The LlmCaller of a runtime: each call runs the gateway's pipeline as the calling plugin."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def call(self, caller: str, call: pb.LlmCall) -> AsyncIterator[pb.ServiceReply]:
        """The answer as one reply, or (`call.stream`) the head, each body piece, then an empty last reply."""
        try:
            response = await self.gateway.call_as_plugin(caller, call)
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
