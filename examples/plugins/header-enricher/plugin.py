#!/usr/bin/env python3
"""post_auth plugin: adds configured headers to every authenticated request.

Config: {"headers": {"X-Team": "search"}, "add_app_id": true}
"""

from __future__ import annotations

from typing import Any

from solstice.sdk import Plugin, modify, pb, serve


class HeaderEnricher(Plugin):
    name = "header-enricher"
    version = "1.0.0"
    description = "Adds configured headers to authenticated requests."
    config_schema = {
        "type": "object",
        "properties": {
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "add_app_id": {"type": "boolean"},
        },
        "additionalProperties": False,
    }

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.add_app_id = True

    def configure(self, config: dict[str, Any]) -> None:
        headers = config.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("headers must map header names to string values")
        self.headers = dict(headers)
        self.add_app_id = bool(config.get("add_app_id", True))

    async def post_auth(self, ctx: pb.RequestContext, request: pb.HttpRequest) -> pb.HookResponse:
        headers = dict(self.headers)
        if self.add_app_id and ctx.app.id:
            headers["X-Solstice-App"] = ctx.app.id
        headers["X-Request-ID"] = ctx.request_id
        return modify(set_headers=headers, metadata={"enriched_by": self.name})


if __name__ == "__main__":
    serve(HeaderEnricher())
