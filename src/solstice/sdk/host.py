"""The plugin's end of the host service API: `self.host.kv`, `.llms`, `.apps` and `.events`.

Solstice opens a HostChannel stream to a plugin that declares scopes; calls made here travel on
it as messages and come back as replies with the same id. Every method is a coroutine.

A plugin may be served by several hosts (a grpc:// plugin that replicas or an edge share, or that
is registered twice), each with its own channel. A call made while serving a host's RPC (a hook,
an endpoint, configure(), or a task started from one) goes over that host's channel, which the
RPC names; a call made outside any RPC needs the open channels to serve one slug (the newest is
used), as they do while a host replaces the plugin's instance.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from solstice.protocol import pb

# How long a call waits for Solstice to open the channel (it does so as it starts the plugin).
CONNECT_WAIT_S = 10.0
# Closed links whose slug is remembered.
_CLOSED_KEPT = 64

# The channel token and request id of the host RPC that the current task serves (or was started by).
_SERVING_LINK: ContextVar[str] = ContextVar("solstice_serving_link", default="")
_SERVING_REQUEST: ContextVar[str] = ContextVar("solstice_serving_request", default="")


def serving(link: str, request_id: str = "") -> None:
    """Record, for this task and the tasks it starts, which host RPC it serves."""
    _SERVING_LINK.set(link)
    _SERVING_REQUEST.set(request_id)


class HostError(Exception):
    """Solstice refused or failed a call; `code` is a gRPC status name such as PERMISSION_DENIED."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Link:
    """One open HostChannel: the calls waiting to be sent and the replies awaited, by id."""

    def __init__(self, slug: str = "", token: str = "") -> None:
        self.outbox: asyncio.Queue[pb.ServiceCall | None] = asyncio.Queue()
        self.pending: dict[int, asyncio.Queue[pb.ServiceReply | HostError]] = {}
        self.slug = slug
        self.token = token

    def deliver(self, reply: pb.ServiceReply) -> None:
        """Hand a reply to the call that waits for it."""
        waiting = self.pending.get(reply.id)
        if waiting is not None:
            waiting.put_nowait(reply)

    def close(self) -> None:
        """Fail every call still waiting, and end the stream."""
        for waiting in self.pending.values():
            waiting.put_nowait(
                HostError("UNAVAILABLE", "the service channel closed before Solstice answered; try again")
            )
        self.pending.clear()
        self.outbox.put_nowait(None)


class Host:
    """The platform's services as this plugin may use them, within its approved scopes."""

    def __init__(self, declared: Sequence[str] | None = None) -> None:
        # The scopes the plugin declares (None: unknown); without any, no channel will ever open.
        self.declared = tuple(declared) if declared is not None else None
        self._links: dict[str, Link] = {}
        # The slug each closed link served: a task started under a host's RPC outlives a reload,
        # which opens that host's new link under a new token.
        self._closed_slugs: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._changed: asyncio.Event | None = None
        self.kv = Kv(self)
        self.llms = Llms(self)
        self.apps = Apps(self)
        self.events = Events(self)

    @property
    def slug(self) -> str:
        """The slug the serving host runs this plugin under ("" when it is not known)."""
        token = _SERVING_LINK.get()
        if token:
            link = self._links.get(token)
            return link.slug if link else ""
        return next(iter(self._links.values())).slug if len(self._links) == 1 else ""

    def attach(self, link: Link) -> None:
        """Send the calls made for the host that opened `link` over it."""
        replaced = self._links.get(link.token)
        self._links[link.token] = link
        if replaced is not None:  # the host reopened this link: the old stream is dead to it
            replaced.close()
        self._notify()

    def detach(self, link: Link) -> None:
        """Stop using `link`; its waiting calls fail."""
        if self._links.get(link.token) is link:
            del self._links[link.token]
            self._closed_slugs[link.token] = link.slug
            while len(self._closed_slugs) > _CLOSED_KEPT:
                del self._closed_slugs[next(iter(self._closed_slugs))]
            self._notify()
        link.close()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _only_for(self, slug: str | None) -> Link | None:
        """The newest open link, when every open link serves `slug` (None: any one slug)."""
        slugs = {link.slug for link in self._links.values()}
        if not self._links or len(slugs) > 1 or (slug is not None and slugs != {slug}):
            return None
        return list(self._links.values())[-1]

    def _choose(self) -> Link | None:
        token = _SERVING_LINK.get()
        if token:
            link = self._links.get(token)
            if link is None and token in self._closed_slugs:  # its host reloaded the plugin
                return self._only_for(self._closed_slugs[token])
            return link
        if self._links and self._only_for(None) is None:
            raise HostError(
                "FAILED_PRECONDITION",
                f"{len(self._links)} Solstice hosts have opened service channels to this plugin under "
                "different names, so a call made outside their requests has no host to go to; make it "
                "while handling a hook, an endpoint or configure(), or in a task started from one",
            )
        return self._only_for(None)

    async def _link(self) -> Link:
        if self.declared == ():
            raise HostError(
                "FAILED_PRECONDITION",
                "this plugin declares no scopes, so Solstice opens no service channel to it; "
                "declare the scopes it needs (scopes = [...])",
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_WAIT_S
        while (link := self._choose()) is None:
            if self._changed is None:
                self._changed = asyncio.Event()
            try:
                await asyncio.wait_for(self._changed.wait(), max(deadline - loop.time(), 0))
            except TimeoutError:
                raise HostError(
                    "UNAVAILABLE",
                    "Solstice has not opened the service channel within "
                    f"{CONNECT_WAIT_S:g}s; is the plugin running under Solstice, with its scopes declared?",
                ) from None
        return link

    async def _send(self, call: pb.ServiceCall) -> tuple[Link, asyncio.Queue[pb.ServiceReply | HostError]]:
        link = await self._link()
        call.id = next(self._ids)
        replies: asyncio.Queue[pb.ServiceReply | HostError] = asyncio.Queue()
        link.pending[call.id] = replies
        link.outbox.put_nowait(call)
        return link, replies

    @staticmethod
    async def _next(replies: asyncio.Queue[pb.ServiceReply | HostError]) -> pb.ServiceReply:
        reply = await replies.get()
        if isinstance(reply, HostError):
            raise reply
        if reply.WhichOneof("result") == "error":
            raise HostError(reply.error.code, reply.error.message)
        return reply

    async def call(self, call: pb.ServiceCall) -> pb.ServiceReply:
        """Send one call and return its reply; HostError if Solstice refused it."""
        link, replies = await self._send(call)
        try:
            return await self._next(replies)
        finally:
            link.pending.pop(call.id, None)

    async def stream(self, call: pb.ServiceCall) -> AsyncGenerator[pb.ServiceReply, None]:
        """Send one call and yield each reply until the last; HostError if Solstice refused it."""
        link, replies = await self._send(call)
        finished = False
        try:
            while not finished:
                try:
                    reply = await self._next(replies)
                except HostError:
                    finished = True  # a refusal is the call's last reply
                    raise
                finished = not reply.more
                yield reply
        finally:
            link.pending.pop(call.id, None)
            if not finished and self._links.get(link.token) is link:  # the caller stopped reading
                link.outbox.put_nowait(pb.ServiceCall(cancel=call.id))


@dataclass(frozen=True)
class KvPage:
    """One page of keys and the token of the next page ("" when this is the last)."""

    keys: list[pb.KvKey]
    next_page_token: str


class Kv:
    """The plugin's own key-value data (scopes kv.read, kv.readwrite)."""

    def __init__(self, host: Host) -> None:
        self._host = host

    async def get(self, key: str) -> bytes | None:
        """The value under `key`, or None when there is none (or it expired)."""
        reply = await self._host.call(pb.ServiceCall(kv_get=pb.KvGet(key=key)))
        return reply.kv_value.value if reply.kv_value.found else None

    async def put(self, key: str, value: bytes | str, ttl: float | None = None) -> bool:
        """Store `value` under `key`, for `ttl` seconds if given; whether the key held a value."""
        raw = value.encode() if isinstance(value, str) else value
        if ttl is not None and not ttl > 0:
            raise ValueError(
                f"ttl must be a positive number of seconds, got {ttl!r}; leave it out to keep the value"
            )
        ttl_ms = max(1, round(ttl * 1000)) if ttl is not None else 0
        reply = await self._host.call(pb.ServiceCall(kv_put=pb.KvPut(key=key, value=raw, ttl_ms=ttl_ms)))
        return reply.kv_written.existed

    async def delete(self, key: str) -> bool:
        """Remove `key`; whether it held a value."""
        reply = await self._host.call(pb.ServiceCall(kv_delete=pb.KvDelete(key=key)))
        return reply.kv_written.existed

    async def list(self, prefix: str = "", limit: int = 0, page_token: str = "") -> KvPage:
        """One page of keys starting with `prefix`, in byte order (`limit` 0: 100, at most 1000)."""
        call = pb.KvList(prefix=prefix, limit=limit, page_token=page_token)
        reply = await self._host.call(pb.ServiceCall(kv_list=call))
        return KvPage(list(reply.kv_keys.keys), reply.kv_keys.next_page_token)

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Every key starting with `prefix`, page after page."""
        token = ""
        while True:
            page = await self.list(prefix, 0, token)
            for key in page.keys:
                yield key.key
            if not page.next_page_token:
                return
            token = page.next_page_token


class Llms:
    """The LLMs Solstice serves, as its API shows them (scope llms.read)."""

    def __init__(self, host: Host) -> None:
        self._host = host

    async def list(self) -> list[pb.LlmInfo]:
        """Every LLM, in slug order."""
        reply = await self._host.call(pb.ServiceCall(llms_list=pb.ListRequest()))
        return list(reply.llms.llms)

    async def get(self, ref: str) -> pb.LlmInfo:
        """One LLM by slug or id; HostError NOT_FOUND if there is none."""
        reply = await self._host.call(pb.ServiceCall(llms_get=pb.GetRequest(ref=ref)))
        return reply.llm

    async def call(
        self,
        llm: str,
        body: bytes | str | Mapping[str, Any] | None = None,
        *,
        path: str = "/v1/chat/completions",
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
    ) -> LlmAnswer:
        """Call LLM `llm` through the gateway and return its whole answer (scope llms.call).

        A mapping body is sent as JSON. The LLM's hooks run, except this plugin's own.
        """
        reply = await self._host.call(_llm_call(llm, body, path, method, headers, stream=False))
        part = reply.llm_call
        return LlmAnswer(part.status, [(h.name, h.value) for h in part.headers], part.body)

    async def stream(
        self,
        llm: str,
        body: bytes | str | Mapping[str, Any] | None = None,
        *,
        path: str = "/v1/chat/completions",
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
    ) -> LlmStream:
        """Call LLM `llm` and read its answer as it comes (`"stream": true` in the body for SSE)."""
        replies = self._host.stream(_llm_call(llm, body, path, method, headers, stream=True))
        head = await anext(replies)
        return LlmStream(head.llm_call, replies)


@dataclass(frozen=True)
class LlmAnswer:
    """An LLM's answer to llms.call: status, headers and the whole body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class LlmStream:
    """An LLM's answer as it streams: status and headers now, the body piece by piece."""

    def __init__(self, head: pb.LlmCallPart, rest: AsyncGenerator[pb.ServiceReply, None]) -> None:
        self.status = head.status
        self.headers = [(h.name, h.value) for h in head.headers]
        self._first = head.body
        self._rest = rest

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._first:
            yield self._first
        async for reply in self._rest:
            if reply.llm_call.body:
                yield reply.llm_call.body

    async def tokens(self) -> AsyncIterator[str]:
        """The text of a streamed chat completion, token by token (its server-sent events'
        `choices[].delta.content`), however the events are split across pieces."""
        pending = b""
        async for piece in self:
            *complete, pending = (pending + piece).split(b"\n\n")
            for event in complete:
                for line in event.split(b"\n"):
                    data = line.removeprefix(b"data:").strip()
                    if not line.startswith(b"data:") or not data or data == b"[DONE]":
                        continue
                    for choice in json.loads(data).get("choices", []):
                        if text := (choice.get("delta") or {}).get("content"):
                            yield text

    async def aclose(self) -> None:
        """Stop reading; Solstice stops the upstream call."""
        await self._rest.aclose()


def _llm_call(llm: str, body: bytes | str | Mapping[str, Any] | None, path: str, method: str,
              headers: Mapping[str, str] | None, stream: bool) -> pb.ServiceCall:  # fmt: skip
    sent = dict(headers or {})
    if isinstance(body, Mapping):
        raw = json.dumps(dict(body)).encode()
        sent.setdefault("content-type", "application/json")
    else:
        raw = body.encode() if isinstance(body, str) else (body or b"")
    call = pb.LlmCall(
        llm=llm,
        path=path,
        method=method,
        headers=[pb.Header(name=k, value=v) for k, v in sent.items()],
        body=raw,
        stream=stream,
        origin_request_id=_SERVING_REQUEST.get(),
    )
    return pb.ServiceCall(llms_call=call)


class Apps:
    """The apps that call Solstice's LLMs, without their keys (scope apps.read)."""

    def __init__(self, host: Host) -> None:
        self._host = host

    async def list(self) -> list[pb.AppInfo]:
        """Every app, in id order."""
        reply = await self._host.call(pb.ServiceCall(apps_list=pb.ListRequest()))
        return list(reply.apps.apps)

    async def get(self, ref: str) -> pb.AppInfo:
        """One app by id or name; HostError NOT_FOUND if there is none."""
        reply = await self._host.call(pb.ServiceCall(apps_get=pb.GetRequest(ref=ref)))
        return reply.app


class Events:
    """Events for the server log and the audit log (scope events.publish)."""

    def __init__(self, host: Host) -> None:
        self._host = host

    async def publish(self, event_type: str, data: Mapping[str, Any] | None = None) -> None:
        """Record an event such as ("webhook.received", {"bytes": 120})."""
        event = pb.Event(type=event_type, data_json=json.dumps(dict(data or {})))
        await self._host.call(pb.ServiceCall(events_publish=event))
