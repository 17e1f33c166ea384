"""The mock LLM reads bodies through safejson: one nested past the parser is a 400, not a crash."""

from __future__ import annotations

import asyncio

import httpx

from solstice.gateway.mock_server import create_mock_app


def test_a_body_nested_past_the_parser_is_a_400() -> None:
    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_mock_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
            return await client.post("/v1/chat/completions", content=b"[" * 5000 + b"]" * 5000)

    response = asyncio.run(post())
    assert response.status_code == 400
    assert "nested" in response.json()["error"]["message"]
