"""HTTP pieces both gateway routes (/llm/ and /plugins/) use: the client's credential and app, a
bounded request body, and response headers in ASGI form."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from solstice import safejson
from solstice.appkeys import hash_key
from solstice.gateway.openai_errors import openai_error
from solstice.gateway.pipeline import Unauthorized
from solstice.gateway.routes import AppIdentity, GatewayConfig


def credential_of(request: Request) -> str:
    """The credential a client presented: a bearer token, else an x-api-key or api-key header."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or request.headers.get("api-key") or ""


def raw_headers(headers: list[tuple[str, str]], length: int | None = None) -> list[tuple[bytes, bytes]]:
    """ASGI header pairs, with Content-Length for a body of `length` bytes."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if length is not None:
        raw.append((b"content-length", str(length).encode()))
    return raw


def app_for_key(config: GatewayConfig, credential: str) -> AppIdentity:
    """The app an app key belongs to; Unauthorized, worded as /llm/ words it, when there is none."""
    if not credential:
        raise Unauthorized(401, "missing API key; send 'Authorization: Bearer <app key>'")
    app = config.apps_by_key.get(hash_key(credential))
    if app is None:
        raise Unauthorized(401, "the API key is invalid or revoked")
    return app


async def read_limited(request: Request, limit: int) -> tuple[bytes, Response | None]:
    """The request body, or a 413 answer once it passes `limit` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return b"", openai_error(413, safejson.body_too_large(limit, int(declared)))
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return b"", openai_error(413, safejson.body_too_large(limit))
        parts.append(chunk)
    return b"".join(parts), None
