#!/usr/bin/env python3
"""A plugin that serves custom endpoints, for the tests of the route protocol.

ROUTES_MODE (environment): serve (default) | overlap (also declares /{everything...}, which
overlaps the others) | malformed (also declares /a/../b); both past the SDK's own checks, so the
host's are the ones that refuse them.
Routes: GET /echo/{name} (unary), POST /store (require_auth, answers what it got),
GET /count/{n} (streamed, n text lines), GET /hold (streamed: one event, then a minute's wait), GET /broken (raises), GET /wrong (returns a string),
GET|POST /headers (the request headers it got), GET /sleep/{ms}, GET|HEAD /files/{rest...} (the
captured rest).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import solstice.sdk.routes as sdk_routes
from solstice.sdk import Plugin, pb, serve
from solstice.sdk.routes import RouteSpec, respond, route


class Routes(Plugin):
    name = "routes"
    version = "0.0.1"

    def configure(self, config: dict[str, Any]) -> None:
        self.greeting = str(config.get("greeting", "hello"))
        self.cancel_file = str(config.get("cancel_file", os.devnull))

    @route("/echo/{name}", description="Greets the name in the path.")
    def echo(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        return respond(
            json={"greeting": f"{self.greeting} {request.params['name']}", "query": request.request.query}
        )

    @route("/store", methods=["POST"], require_auth=True)
    async def store(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        """Answers what it received, and for which app."""
        return respond(
            json={
                "body": request.request.body.decode(),
                "app": request.context.app.id,
                "authenticated": request.authenticated,
            },
            status=201,
            headers={"x-stored": "yes"},
        )

    @route("/count/{n}", stream=True, media_type="text/plain")
    async def count(self, request: pb.EndpointRequest) -> AsyncIterator[str]:
        for number in range(int(request.params["n"])):
            yield f"{number}\n"
            await asyncio.sleep(0.01)

    @route("/hold", stream=True, media_type="text/event-stream")
    async def hold(self, request: pb.EndpointRequest) -> AsyncIterator[str]:
        """One event, then nothing for a minute; a cancel is written to config "cancel_file"."""
        yield "data: first\n\n"
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            with open(self.cancel_file, "a") as out:
                out.write("cancelled\n")
            raise
        yield "data: late\n\n"

    @route("/broken")
    def broken(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        raise RuntimeError("the broken route broke")

    @route("/wrong")
    def wrong(self, request: pb.EndpointRequest) -> str:
        return "not a response"

    @route("/headers", methods=["GET", "POST"])
    def headers(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        return respond(json=[[h.name, h.value] for h in request.request.headers])

    @route("/sleep/{ms}")
    async def sleep(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        await asyncio.sleep(int(request.params["ms"]) / 1000)
        return respond("awake")

    @route("/files/{rest...}", methods=["GET", "HEAD"])
    def files(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        return respond(request.params["rest"], media_type="text/plain")


def _declare_past_the_sdk(path: str) -> None:
    """Add a route the SDK would refuse, with its checks off, so the host's are the ones tested."""
    sdk_routes.check_routes = lambda declared: []
    Routes.extra = lambda self, request: respond("extra")  # type: ignore[attr-defined]
    Routes.extra.__solstice_route__ = RouteSpec(path, ("GET",), "", False, False, "", "extra")  # type: ignore[attr-defined]


MODE = os.environ.get("ROUTES_MODE", "serve")
if MODE == "overlap":
    _declare_past_the_sdk("/{everything...}")
elif MODE == "malformed":
    _declare_past_the_sdk("/a/../b")


if __name__ == "__main__":
    serve(Routes())
