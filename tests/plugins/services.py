#!/usr/bin/env python3
"""A plugin that calls the host service API from its endpoints, for the tests of scopes, KV and the rest.

SERVICES_SCOPES (environment): the scopes it declares, comma-separated (default: all but llms.call).
Each route answers what the call returned as JSON, or the refusal: {"code", "message"} with a
status that follows the code. --listen HOST:PORT serves it for grpc://.
Routes: GET|PUT|DELETE /kv/{key...} (PUT: the body, ?ttl_ms=), GET /list (?prefix=&limit=&token=),
GET /keys (every key, page after page), GET /llms, GET /llms/{ref}, GET /apps, GET /apps/{ref},
POST /event/{type} (the body as the event's data JSON), GET /ask/{llm} (llms.call, whole),
GET /sse/{llm} (llms.call streamed, relayed as it comes).
pre_auth (when registered for it): counts its calls in the key "pre_auth-calls", and keeps the
name of the last call's app (RequestContext.app) in "pre_auth-app"; a request with
the header x-ask calls an LLM from the hook, and goes on with x-inner-status set: "yes" its own
LLM, else the first slug of a comma-separated list, passing the rest on as that call's x-ask. A
refused call is kept in the key "refused" ("CODE: message"). GET /whoami: the slug the host knows.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from google.protobuf.json_format import MessageToDict

from solstice.sdk import Plugin, modify, pb, proceed, respond, route, serve
from solstice.sdk.host import HostError

_STATUS = {"PERMISSION_DENIED": 403, "NOT_FOUND": 404, "INVALID_ARGUMENT": 400, "RESOURCE_EXHAUSTED": 507}
_DEFAULT = "kv.readwrite,llms.read,apps.read,events.publish,llms.call"
_ASK = {"model": "m", "messages": [{"role": "user", "content": "tell me"}]}


async def _answer(work: Callable[[], Awaitable[Any]]) -> pb.HttpResponse:
    try:
        return respond(json={"result": await work()})
    except HostError as refused:
        return respond(
            json={"code": refused.code, "message": refused.message}, status=_STATUS.get(refused.code, 503)
        )


def _query(request: pb.EndpointRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.request.query).items()}


class Services(Plugin):
    name = "services"
    version = "0.0.1"
    scopes = [s for s in os.environ.get("SERVICES_SCOPES", _DEFAULT).split(",") if s]

    @route("/kv/{key...}", methods=["GET", "PUT", "DELETE"])
    async def kv(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        key = request.params["key"]
        method = request.request.method
        if method == "PUT":
            ttl_ms = int(_query(request).get("ttl_ms", "0"))
            return await _answer(
                lambda: self.host.kv.put(key, request.request.body, ttl_ms / 1000 if ttl_ms else None)
            )
        if method == "DELETE":
            return await _answer(lambda: self.host.kv.delete(key))

        async def value() -> str | None:
            found = await self.host.kv.get(key)
            return found.decode() if found is not None else None

        return await _answer(value)

    @route("/list")
    async def list_keys(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        query = _query(request)

        async def page() -> dict[str, Any]:
            found = await self.host.kv.list(
                query.get("prefix", ""), int(query.get("limit", "0")), query.get("token", "")
            )
            return {
                "keys": [{"key": k.key, "size": k.size, "expires": k.expires_unix_ms} for k in found.keys],
                "next": found.next_page_token,
            }

        return await _answer(page)

    @route("/keys")
    async def all_keys(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        async def every() -> list[str]:
            return [key async for key in self.host.kv.keys(_query(request).get("prefix", ""))]

        return await _answer(every)

    @route("/llms")
    async def llms(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        return await _answer(lambda: self._dicts(self.host.llms.list()))

    @route("/llms/{ref}")
    async def llm(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        return await _answer(lambda: self._dict(self.host.llms.get(request.params["ref"])))

    @route("/apps")
    async def apps(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        return await _answer(lambda: self._dicts(self.host.apps.list()))

    @route("/apps/{ref}")
    async def app(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        return await _answer(lambda: self._dict(self.host.apps.get(request.params["ref"])))

    @route("/event/{type}", methods=["POST"])
    async def event(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        import json

        data = json.loads(request.request.body or b"{}")
        return await _answer(lambda: self.host.events.publish(request.params["type"], data))

    @route("/ask/{llm}")
    async def ask(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        async def answer() -> dict[str, Any]:
            got = await self.host.llms.call(request.params["llm"], _ASK)
            content = got.json()["choices"][0]["message"]["content"] if got.status == 200 else got.json()
            return {"status": got.status, "content": content}

        return await _answer(answer)

    @route("/sse/{llm}", stream=True, media_type="text/event-stream")
    async def sse(self, request: pb.EndpointRequest) -> AsyncIterator[bytes | pb.HttpResponse]:
        try:
            answer = await self.host.llms.stream(request.params["llm"], {**_ASK, "stream": True})
        except HostError as refused:
            yield respond(status=_STATUS.get(refused.code, 503))
            yield f"refused: {refused.code}: {refused.message}".encode()
            return
        yield respond(status=answer.status, media_type="text/event-stream")
        async for piece in answer:
            yield piece

    @route("/whoami")
    async def whoami(self, request: pb.EndpointRequest) -> pb.HttpResponse:
        return respond(json={"result": self.host.slug})

    async def pre_auth(self, ctx: pb.RequestContext, request: pb.HttpRequest) -> pb.HookResponse:
        calls = int(await self.host.kv.get("pre_auth-calls") or b"0") + 1
        await self.host.kv.put("pre_auth-calls", str(calls))
        await self.host.kv.put("pre_auth-app", ctx.app.name)
        ask = next((h.value for h in request.headers if h.name == "x-ask"), "")
        if not ask:
            return proceed()
        target, _, rest = (ctx.llm.slug, "", "") if ask == "yes" else ask.partition(",")
        try:
            inner = await self.host.llms.call(target, _ASK, headers={"x-ask": rest} if rest else None)
        except HostError as refused:
            await self.host.kv.put("refused", f"{refused.code}: {refused.message}")
            return proceed()
        return modify(set_headers={"x-inner-status": str(inner.status)})

    @staticmethod
    async def _dicts(found: Awaitable[list[Any]]) -> list[dict[str, Any]]:
        return [MessageToDict(m, preserving_proto_field_name=True) for m in await found]

    @staticmethod
    async def _dict(found: Awaitable[Any]) -> dict[str, Any]:
        return MessageToDict(await found, preserving_proto_field_name=True)


if __name__ == "__main__":
    serve(Services())
