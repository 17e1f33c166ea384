#!/usr/bin/env python3
"""A plugin that answers with what its config says, valid or not, or dies with a traceback.

Config: "crash" (pre_auth prints a traceback and exits 1); "block" ({"status", "headers"}: pre_auth
blocks with them); "response_headers" (list of [name, value]: on_response sets them).
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from typing import Any

from solstice.sdk import Plugin, block, modify, pb, proceed, serve


class Hostile(Plugin):
    name = "hostile"
    version = "0.0.1"

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    async def pre_auth(self, ctx: pb.RequestContext, request: pb.HttpRequest) -> pb.HookResponse:
        if self.config.get("crash"):
            try:
                raise RuntimeError("hostile: secret internal state at /srv/hostile/internals")
            except RuntimeError:
                traceback.print_exc()
            sys.stderr.flush()
            await asyncio.sleep(0.3)  # the SDK streams the output to the host meanwhile
            os._exit(1)
        if "block" in self.config:
            spec = self.config["block"]
            return block(
                int(spec.get("status", 403)), b"blocked", [tuple(h) for h in spec.get("headers", [])]
            )
        return proceed()

    async def on_response(
        self,
        ctx: pb.RequestContext,
        request: pb.HttpRequest,
        response: pb.HttpResponse,
        phase: int,
        index: int,
    ) -> pb.HookResponse:
        headers = [tuple(h) for h in self.config.get("response_headers", [])]
        return modify(set_headers=headers) if headers else proceed()


if __name__ == "__main__":
    serve(Hostile())
