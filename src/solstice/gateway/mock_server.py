"""`solstice mock-llm`: the mock OpenAI-compatible LLM as its own HTTP server."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from solstice import safejson
from solstice.gateway import mock


def create_mock_app(delay_ms: int = 0) -> Starlette:
    """An ASGI app answering /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models."""

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        try:
            payload = safejson.parse(raw) if raw else {}
        except ValueError as exc:
            return JSONResponse(
                {"error": {"message": f"invalid JSON: {exc}", "type": "invalid_request_error"}}, 400
            )
        payload = payload if isinstance(payload, dict) else {}
        path = request.path_params["path"]
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if payload.get("stream"):
            return StreamingResponse(mock.stream(path, payload), media_type="text/event-stream")
        status, body = mock.answer(path, payload, list(request.headers.items()))
        return JSONResponse(body, status_code=status)

    return Starlette(routes=[Route("/v1/{path:path}", endpoint, methods=["GET", "POST"])])
