"""The base class plugin authors subclass, and helpers that build hook answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from solstice.hooks import HOOK_TYPES
from solstice.protocol import pb
from solstice.sdk.agents import Chat
from solstice.sdk.host import Host
from solstice.sdk.objects import ObjectChange, ObjectHook
from solstice.sdk.tasks import Schedule, Task

HookAnswer = pb.HookResponse | Awaitable[pb.HookResponse]


class Plugin:
    """Base class of a Solstice plugin: override the hooks you implement, nothing else.

    Hook methods may be plain or ``async``; a plain one runs on the event loop, so keep
    it quick. Raise ``ValueError`` from ``configure`` to reject a configuration.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    description: ClassVar[str] = ""
    config_schema: ClassVar[Mapping[str, Any] | None] = None
    wants_stream_chunks: ClassVar[bool] = False
    # Host service API scopes the plugin needs (solstice.scopes.SCOPES); an operator approves them.
    scopes: ClassVar[Sequence[str]] = ()
    # Schedules whose due times call run_task; a plugin that implements run_task requests the
    # scope schedules.run by itself.
    schedules: ClassVar[Sequence[Schedule]] = ()
    # Changes to LLMs, apps and plugins that call on_object; a plugin that declares them requests
    # the scope objects.hook by itself.
    object_hooks: ClassVar[Sequence[ObjectHook]] = ()

    @property
    def host(self) -> Host:
        """The platform's services (kv, llms, apps, events), within the plugin's approved scopes."""
        host = self.__dict__.get("_solstice_host")
        if host is None:
            host = self.__dict__["_solstice_host"] = Host(type(self).scopes)
        return host

    def configure(self, config: dict[str, Any]) -> None:
        """Receive the plugin's configuration (a JSON object); called before any hook."""

    def pre_auth(self, ctx: pb.RequestContext, request: pb.HttpRequest) -> HookAnswer:
        """Inspect or change a request before authentication."""
        raise NotImplementedError

    def auth(
        self, ctx: pb.RequestContext, request: pb.HttpRequest, credential: str
    ) -> pb.AuthResponse | Awaitable[pb.AuthResponse]:
        """Authenticate the request: answer authenticated(), rejected() or abstain()."""
        raise NotImplementedError

    def post_auth(self, ctx: pb.RequestContext, request: pb.HttpRequest) -> HookAnswer:
        """Inspect or change an authenticated request before it goes upstream."""
        raise NotImplementedError

    def on_response(
        self,
        ctx: pb.RequestContext,
        request: pb.HttpRequest,
        response: pb.HttpResponse,
        phase: int,
        chunk_index: int,
    ) -> HookAnswer:
        """Inspect or change the upstream response (see pb.ResponsePhase)."""
        raise NotImplementedError

    def data_collection(self, records: list[pb.ProxyRecord]) -> int | Awaitable[int]:
        """Store or forward a batch of proxy records; return how many were accepted."""
        raise NotImplementedError

    def run_task(self, task: Task) -> str | Awaitable[str | None] | None:
        """Do one due run of a schedule; return a short summary (or None), raise to fail the run."""
        raise NotImplementedError

    def on_object(
        self, change: ObjectChange
    ) -> pb.ObjectHookResponse | Awaitable[pb.ObjectHookResponse | None] | None:
        """Judge one change: allow_object() (or None), reject_object(reason) or replace_object(obj).

        after_* events are notifications: the answer is not used, but raising has it sent again.
        """
        raise NotImplementedError

    def chat(self, chat: Chat) -> AsyncIterator[pb.AgentChunk | str]:
        """Answer one chat turn: an async generator of chunks (content(), thinking(), tool_call(),
        tool_result(), or str for content); DONE is sent when it returns, ERROR when it raises."""
        raise NotImplementedError

    @classmethod
    def is_agent(cls) -> bool:
        """Whether the class implements chat."""
        return cls.chat is not Plugin.chat

    @classmethod
    def hooks_objects(cls) -> bool:
        """Whether the class declares object hooks."""
        return bool(cls.object_hooks)

    @classmethod
    def runs_tasks(cls) -> bool:
        """Whether the class implements run_task."""
        return cls.run_task is not Plugin.run_task

    @classmethod
    def implemented_hooks(cls) -> list[str]:
        """Names of the hooks this class overrides (a method per hook, named as the hook)."""
        return [name for name in HOOK_TYPES if getattr(cls, name) is not getattr(Plugin, name)]


def _headers(pairs: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> list[pb.Header]:
    items = pairs.items() if isinstance(pairs, Mapping) else (pairs or [])
    return [pb.Header(name=name, value=value) for name, value in items]


def proceed(metadata: Mapping[str, str] | None = None) -> pb.HookResponse:
    """Continue unchanged, optionally passing metadata to later plugins."""
    return pb.HookResponse(proceed=pb.Continue(), metadata_updates=dict(metadata or {}))


def modify(
    set_headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    remove_headers: Iterable[str] = (),
    body: bytes | None = None,
    metadata: Mapping[str, str] | None = None,
) -> pb.HookResponse:
    """Continue with changed headers and/or body."""
    change = pb.Modify(
        set_headers=_headers(set_headers),
        remove_headers=list(remove_headers),
        replace_body=body is not None,
        body=body or b"",
    )
    return pb.HookResponse(modify=change, metadata_updates=dict(metadata or {}))


def block(
    status: int = 403,
    body: bytes | str = b"",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
) -> pb.HookResponse:
    """Stop the request and answer the client with this response."""
    raw = body.encode() if isinstance(body, str) else body
    return pb.HookResponse(block=pb.Block(status=status, headers=_headers(headers), body=raw))


def authenticated(app_id: str, user_id: str = "", claims: Mapping[str, str] | None = None) -> pb.AuthResponse:
    """The credential is valid and belongs to this app."""
    who = pb.Authenticated(app_id=app_id, user_id=user_id, claims=dict(claims or {}))
    return pb.AuthResponse(authenticated=who)


def rejected(reason: str) -> pb.AuthResponse:
    """The credential is invalid: the client gets 401 with this reason."""
    return pb.AuthResponse(rejected=pb.Rejected(reason=reason))


def abstain() -> pb.AuthResponse:
    """Not this plugin's credential: let the next auth plugin decide."""
    return pb.AuthResponse(abstain=pb.Abstain())
