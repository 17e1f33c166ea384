#!/usr/bin/env python3
"""custom_endpoint plugin: an inbox for webhooks. Apps post to it with their key; it keeps each
delivery in its own key-value data (scope kv.readwrite) and serves them back to the same app.

Routes (all need an app key): POST /hooks stores the body (202, with its id), GET /hooks lists
the app's deliveries (?page=TOKEN for the next page), GET /hooks/{id} answers one as it came.
Config: {"keep_hours": 24} (deliveries expire after that), {"max_bytes": 65536}.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs

from solstice.sdk import Plugin, pb, respond, route, serve
from solstice.sdk.host import HostError


class WebhookInbox(Plugin):
    name = "webhook-inbox"
    version = "1.0.0"
    description = "Keeps the webhooks apps post and serves them back."
    scopes = ["kv.readwrite"]
    config_schema = {
        "type": "object",
        "properties": {
            "keep_hours": {"type": "number", "exclusiveMinimum": 0},
            "max_bytes": {"type": "integer", "minimum": 1},
        },
        "additionalProperties": False,
    }

    def __init__(self) -> None:
        self.keep_s = 24 * 3600.0
        self.max_bytes = 65536

    def configure(self, config: dict[str, Any]) -> None:
        self.keep_s = float(config.get("keep_hours", 24)) * 3600
        self.max_bytes = int(config.get("max_bytes", 65536))

    @staticmethod
    def _prefix(request: pb.EndpointRequest) -> str:
        # Keys live under the app's id: an app reads back only what it posted.
        return f"hook/{request.context.app.id}/"

    @route("/hooks", methods=["POST"], require_auth=True)
    async def receive(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        """Keeps one delivery."""
        body = request.request.body
        if len(body) > self.max_bytes:
            return respond(json={"error": f"deliveries are at most {self.max_bytes} bytes"}, status=413)
        content_type = next((h.value for h in request.request.headers if h.name == "content-type"), "")
        delivery_id = f"{time.time_ns():020d}"
        envelope = {
            "received_at": time.time(),
            "content_type": content_type or "application/octet-stream",
            "body": base64.b64encode(body).decode(),
        }
        try:
            await self.host.kv.put(self._prefix(request) + delivery_id, json.dumps(envelope), ttl=self.keep_s)
        except HostError as refused:
            return respond(json={"error": refused.message}, status=503)
        return respond(json={"id": delivery_id}, status=202)

    @route("/hooks", require_auth=True)
    async def list_deliveries(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        """Lists the calling app's deliveries, oldest first."""
        page_token = parse_qs(request.request.query).get("page", [""])[0]
        prefix = self._prefix(request)
        try:
            page = await self.host.kv.list(prefix, limit=100, page_token=page_token)
        except HostError as refused:
            return respond(
                json={"error": refused.message}, status=400 if refused.code == "INVALID_ARGUMENT" else 503
            )
        ids = [key.key.removeprefix(prefix) for key in page.keys]
        return respond(json={"ids": ids, "next_page": page.next_page_token or None})

    @route("/hooks/{id}", require_auth=True)
    async def one(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        """Answers one delivery with the body and content type it came with."""
        try:
            stored = await self.host.kv.get(self._prefix(request) + request.params["id"])
        except HostError as refused:
            return respond(json={"error": refused.message}, status=503)
        if stored is None:
            return respond(json={"error": f"no delivery {request.params['id']}"}, status=404)
        envelope = json.loads(stored)
        return respond(base64.b64decode(envelope["body"]), media_type=envelope["content_type"])


if __name__ == "__main__":
    serve(WebhookInbox())
