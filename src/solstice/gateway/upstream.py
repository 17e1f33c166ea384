"""Calls to the LLM behind a route: pooled HTTP for real vendors, in-process for the mock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import structlog
from multidict import CIMultiDict

from solstice import safejson
from solstice.gateway import mock
from solstice.gateway.routes import Route
from solstice.security.addresses import parse_ip_literal
from solstice.security.upstreams import UpstreamPolicy, UpstreamRefused, UpstreamResolver, origin_of
from solstice.settings import Settings

log = structlog.get_logger("solstice.gateway")

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
# Set by Solstice's own server on the way back to the client.
_NOT_RETURNED = HOP_BY_HOP | {"date", "server"}
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
    # For streams: whether the upstream finished its answer (False when it broke off).
    complete: Callable[[], bool] = field(default=lambda: True)

    @property
    def streaming(self) -> bool:
        """True when the body is relayed chunk by chunk."""
        return self.chunks is not None


async def _nothing() -> None:
    return None


def _releaser(response: aiohttp.ClientResponse) -> Callable[[], Awaitable[None]]:
    async def release() -> None:
        response.release()

    return release


def forwardable(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers without hop-by-hop ones (fixed, and named in Connection) or the client's credentials."""
    named = {t.strip().lower() for k, v in headers if k.lower() == "connection" for t in v.split(",")}
    dropped = HOP_BY_HOP | _CLIENT_CREDENTIALS | named
    return [(k, v) for k, v in headers if k.lower() not in dropped]


class Upstream:
    """One pooled HTTP client (aiohttp) for every upstream; the mock vendor answers in process."""

    def __init__(self, settings: Settings, policy: UpstreamPolicy | None = None) -> None:
        self.settings = settings
        self.policy = policy or UpstreamPolicy.from_settings(settings)
        # Created on first use: an aiohttp session belongs to the running event loop.
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # Names are resolved and checked by the upstream policy; only checked addresses are dialled.
                connector=aiohttp.TCPConnector(
                    limit=512,
                    limit_per_host=256,
                    keepalive_timeout=30,
                    resolver=UpstreamResolver(self.policy),
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=self.settings.upstream_connect_timeout,
                    sock_read=self.settings.upstream_timeout,
                ),
                auto_decompress=False,
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._session is not None:
            await self._session.close()

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
        outgoing = CIMultiDict((k, v) for k, v in forwardable(headers) if k.lower() != "accept-encoding")
        outgoing["accept-encoding"] = "identity"  # plugins see the body as the client will
        if route.api_key:
            outgoing["authorization"] = f"Bearer {route.api_key}"
        try:
            await self._check_literal(route)
            response = await self._client().request(
                method, url, headers=outgoing, data=body or None, allow_redirects=False,
                skip_auto_headers=("User-Agent", "Content-Type"),
            )  # fmt: skip
        except UpstreamRefused as exc:
            # The reason names addresses and settings: for the log, not for the gateway's client.
            log.error("upstream refused by the security policy", llm=route.slug, reason=str(exc))
            raise UpstreamError(
                502, f"upstream of LLM {route.slug} is refused by the security policy"
            ) from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamError(504, f"upstream of LLM {route.slug} did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                502, f"upstream of LLM {route.slug} is unreachable: {type(exc).__name__}"
            ) from None
        headers_out = [(k, v) for k, v in response.headers.items() if k.lower() not in _NOT_RETURNED]
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            state = {"complete": False}
            return UpstreamResponse(
                response.status,
                headers_out,
                chunks=self._relay(response, state),
                close=_releaser(response),
                complete=lambda: state["complete"],
            )
        try:
            data = await self._read_limited(route, response)
        finally:
            response.release()
        return UpstreamResponse(response.status, headers_out, body=data)

    async def _check_literal(self, route: Route) -> None:
        """aiohttp dials IP literals without asking the resolver: check those here."""
        origin = origin_of(route.upstream_url)
        if origin is None:
            raise UpstreamRefused(f"upstream_url of LLM {route.slug} is not a usable http(s) URL")
        if parse_ip_literal(origin.host) is not None:
            await self.policy.check_host(origin.host, origin.port)

    async def _read_limited(self, route: Route, response: aiohttp.ClientResponse) -> bytes:
        limit = self.settings.gateway_max_response_bytes
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in response.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise UpstreamError(502, f"upstream of LLM {route.slug} answered more than {limit} bytes")
                parts.append(chunk)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamError(504, f"upstream of LLM {route.slug} stopped sending mid-answer") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                502, f"upstream of LLM {route.slug} broke off: {type(exc).__name__}"
            ) from None
        return b"".join(parts)

    async def _relay(self, response: aiohttp.ClientResponse, state: dict[str, bool]) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.content.iter_any():
                yield chunk
            state["complete"] = True
        except (TimeoutError, aiohttp.ClientError):
            return  # the client sees the stream end; the record says truncated
        finally:
            response.release()

    async def _mock(
        self, route: Route, path: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> UpstreamResponse:
        delay = mock.delay_seconds(route.options, "delay_ms")
        try:
            # Plugins may have rewritten the body: parse it as carefully as a client's.
            payload = safejson.parse(body) if body else {}
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        if payload.get("stream"):
            chunks = mock.stream(path, payload, delay_s=mock.delay_seconds(route.options, "chunk_delay_ms"))
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
