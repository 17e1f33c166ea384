"""The host service API's front door: which scope each call needs, the checks, the answer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence

import structlog

from solstice.host import refusal
from solstice.protocol import pb
from solstice.scopes import Scope, grants
from solstice.services.backends import Catalog, EventSink, LlmCaller, PluginGone
from solstice.services.events import EventError, event_of
from solstice.services.kv import KvError, KvService

log = structlog.get_logger("solstice.services")

# The scope each kind of call needs (ServiceCall's oneof names).
SCOPE_OF: dict[str, Scope] = {
    "kv_get": "kv.read",
    "kv_list": "kv.read",
    "kv_put": "kv.readwrite",
    "kv_delete": "kv.readwrite",
    "llms_list": "llms.read",
    "llms_get": "llms.read",
    "apps_list": "apps.read",
    "apps_get": "apps.read",
    "events_publish": "events.publish",
    "llms_call": "llms.call",
}


class PluginServices:
    """Answers plugins' calls to the platform, each within the scopes its plugin may use."""

    def __init__(self, catalog: Catalog, kv: KvService, events: EventSink, llm_calls: LlmCaller) -> None:
        self.catalog = catalog
        self.kv = kv
        self.events = events
        self.llm_calls = llm_calls

    async def answer(
        self, slug: str, declared: Sequence[str], call: pb.ServiceCall
    ) -> AsyncGenerator[pb.ServiceReply, None]:
        """The replies to one call from plugin `slug`."""
        kind = call.WhichOneof("call")
        scope = SCOPE_OF.get(kind or "")
        if scope is None:
            yield refusal(
                "UNIMPLEMENTED",
                f"this Solstice does not serve {kind or 'an empty'} calls; "
                "upgrade Solstice or the plugin's SDK",
            )
            return
        problem = self._refusal(slug, declared, scope)
        if problem is not None:
            yield problem
            return
        if kind == "llms_call":
            # Closed with this generator, so a cancelled call stops its upstream request at once.
            async with contextlib.aclosing(self.llm_calls.call(slug, call.llms_call)) as replies:
                async for reply in replies:
                    yield reply
            return
        try:
            yield await self._serve(slug, call)
        except (KvError, EventError) as exc:
            yield refusal("INVALID_ARGUMENT", str(exc))
        except PluginGone:
            yield refusal("NOT_FOUND", f"plugin {slug} is no longer registered; its calls are refused")

    def _refusal(self, slug: str, declared: Sequence[str], scope: Scope) -> pb.ServiceReply | None:
        if not grants(declared, scope):
            return refusal(
                "PERMISSION_DENIED",
                f"plugin {slug} did not declare the scope {scope}; "
                "add it to the plugin's scopes and reload it",
            )
        if not grants(self.catalog.approved(slug), scope):
            return refusal(
                "PERMISSION_DENIED",
                f"plugin {slug} may not use {scope} until an operator approves it: "
                + self.catalog.how_to_approve(slug, scope),
            )
        return None

    async def _serve(self, slug: str, call: pb.ServiceCall) -> pb.ServiceReply:
        match call.WhichOneof("call"):
            case "kv_get":
                return await self.kv.get(slug, call.kv_get)
            case "kv_put":
                return await self.kv.put(slug, call.kv_put)
            case "kv_delete":
                return await self.kv.delete(slug, call.kv_delete)
            case "kv_list":
                return await self.kv.list(slug, call.kv_list)
            case "llms_list":
                return pb.ServiceReply(llms=pb.LlmList(llms=self.catalog.llms()))
            case "llms_get":
                return self._llm(call.llms_get.ref)
            case "apps_list":
                return pb.ServiceReply(apps=pb.AppList(apps=self.catalog.apps()))
            case "apps_get":
                return self._app(call.apps_get.ref)
            case _:
                event_type, data = event_of(call.events_publish)
                await self.events.publish(slug, event_type, data)
                return pb.ServiceReply(event=pb.EventPublished())

    def _llm(self, ref: str) -> pb.ServiceReply:
        for llm in self.catalog.llms():
            if ref in (llm.slug, llm.id):
                return pb.ServiceReply(llm=llm)
        return refusal("NOT_FOUND", f"no LLM {ref[:100]!r}; give an LLM's slug or id (llms.list shows them)")

    def _app(self, ref: str) -> pb.ServiceReply:
        for app in self.catalog.apps():
            if ref in (app.id, app.name):
                return pb.ServiceReply(app=app)
        return refusal("NOT_FOUND", f"no app {ref[:100]!r}; give an app's id or name (apps.list shows them)")
