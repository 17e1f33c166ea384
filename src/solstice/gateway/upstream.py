"""Calls to the LLM behind a route: pooled HTTP for real vendors, in-process for the mock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx

from solstice.gateway import mock
from solstice.gateway.config import Route
from solstice.settings import Settings

# Never forwarded in either direction (RFC 9110 7.6.1), plus what the proxy sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# The client's credentials are for Solstice, not for the upstream.
_CLIENT_CREDENTIALS = frozenset({"authorization", "x-api-key", "api-key"})


class UpstreamError(Exception):
    """The upstream could not be used; `status` is what the client gets (502 or 504)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class UpstreamResponse:
    """What came back: a whole body, or a stream of chunks to relay."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunks: AsyncIterator[bytes] | None = None
    close: Callable[[], Awaitable[None]] = field(default=lambda: _nothing())

    @property
    def streaming(self) -> bool:
        """True when the body is relayed chunk by chunk."""
        return self.chunks is not None


async def _nothing() -> None:
    return None


def forwardable(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers without hop-by-hop ones (fixed, and named in Connection) or the client's credentials."""
    named = {t.strip().lower() for k, v in headers if k.lower() == "connection" for t in v.split(",")}
    dropped = HOP_BY_HOP | _CLIENT_CREDENTIALS | named
    return [(k, v) for k, v in headers if k.lower() not in dropped]


class Upstream:
    """One pooled HTTP client for every upstream; the mock vendor answers in process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.upstream_timeout, connect=settings.upstream_connect_timeout),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()

    async def send(
        self,
        route: Route,
        method: str,
        path: str,
        query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
    ) -> UpstreamResponse:
        """Forward one request to the route's LLM."""
        if route.vendor == "mock":
            return await self._mock(route, path, headers, body)
        url = f"{route.upstream_url}/{path.lstrip('/')}" + (f"?{query}" if query else "")
        outgoing = [(k, v) for k, v in forwardable(headers) if k.lower() != "accept-encoding"]
        outgoing.append(("accept-encoding", "identity"))  # plugins see the body as the client will
        if route.api_key:
            outgoing.append(("authorization", f"Bearer {route.api_key}"))
        request = self._client.build_request(method, url, headers=outgoing, content=body)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise UpstreamError(504, f"upstream of LLM {route.slug} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(
                502, f"upstream of LLM {route.slug} is unreachable: {type(exc).__name__}"
            ) from None
        headers_out = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in HOP_BY_HOP]
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return UpstreamResponse(
                response.status_code, headers_out, chunks=self._relay(route, response), close=response.aclose
            )
        try:
            data = await self._read_limited(route, response)
        finally:
            await response.aclose()
        return UpstreamResponse(response.status_code, headers_out, body=data)

    async def _read_limited(self, route: Route, response: httpx.Response) -> bytes:
        limit = self.settings.gateway_max_response_bytes
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise UpstreamError(502, f"upstream of LLM {route.slug} answered more than {limit} bytes")
                parts.append(chunk)
        except httpx.TimeoutException:
            raise UpstreamError(504, f"upstream of LLM {route.slug} stopped sending mid-answer") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(
                502, f"upstream of LLM {route.slug} broke off: {type(exc).__name__}"
            ) from None
        return b"".join(parts)

    async def _relay(self, route: Route, response: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.HTTPError:
            return  # the client sees the stream end; the record says so
        finally:
            await response.aclose()

    async def _mock(
        self, route: Route, path: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> UpstreamResponse:
        delay = float(route.options.get("delay_ms", 0)) / 1000
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        if payload.get("stream"):
            chunks = mock.stream(path, payload, delay_s=float(route.options.get("chunk_delay_ms", 0)) / 1000)
            if delay:
                await asyncio.sleep(delay)
            return UpstreamResponse(200, [("content-type", "text/event-stream")], chunks=chunks)
        if delay:
            await asyncio.sleep(delay)
        outgoing = forwardable(headers)
        if route.api_key:
            outgoing.append(("authorization", f"Bearer {route.api_key}"))
        status, answer = mock.answer(path, payload, outgoing)
        return UpstreamResponse(
            status, [("content-type", "application/json")], body=json.dumps(answer).encode()
        )
