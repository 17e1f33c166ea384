"""Agents and object hooks in the SDK: what the servicer makes of a plugin's answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from solstice.control.object_hooks import read_registrations
from solstice.protocol import pb
from solstice.sdk import (
    Chat,
    ObjectChange,
    ObjectHook,
    Plugin,
    agent_error,
    content,
    reject_object,
    replace_object,
    tool_call,
)
from solstice.sdk.objects import ObjectHookError
from solstice.sdk.servicer import PluginServicer


class _Context:
    def invocation_metadata(self) -> tuple[()]:
        return ()

    async def abort(self, code: Any, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")


async def _answer(plugin: Plugin, message: str) -> list[pb.AgentChunk]:
    servicer = PluginServicer(plugin)
    context: Any = _Context()
    await servicer.Configure(pb.ConfigureRequest(config_json="{}"), context)
    request = pb.AgentRequest(message=message, history=[pb.AgentTurn(role="user", content="before")])
    return [chunk async for chunk in servicer.HandleAgentMessage(request, context)]


class Talker(Plugin):
    async def chat(self, chat: Chat) -> AsyncIterator[pb.AgentChunk | str]:
        if chat.message == "stop":
            yield agent_error("no more")
            yield "never sent"
        if chat.message == "boom":
            raise ValueError("/internal/detail")
        if chat.message == "wrong":
            yield 42  # type: ignore[misc]
        yield tool_call("search", {"q": chat.message})
        yield f"{len(chat.messages())} messages"
        yield content("!", {"n": 1})


async def test_an_answer_ends_with_done_or_error_and_never_leaks_an_exception() -> None:
    chunks = await _answer(Talker(), "hi")
    assert [(c.type, c.content) for c in chunks] == [
        (pb.AGENT_CHUNK_TOOL_CALL, "search"),
        (pb.AGENT_CHUNK_CONTENT, "2 messages"),
        (pb.AGENT_CHUNK_CONTENT, "!"),
        (pb.AGENT_CHUNK_DONE, ""),
    ]
    assert json.loads(chunks[0].metadata_json) == {"name": "search", "arguments": {"q": "hi"}}
    assert [(c.type, c.content) for c in await _answer(Talker(), "stop")] == [
        (pb.AGENT_CHUNK_ERROR, "no more")
    ]
    for message in ("boom", "wrong"):
        [failed] = await _answer(Talker(), message)
        assert (
            failed.type == pb.AGENT_CHUNK_ERROR
            and failed.content == "the agent failed to answer; try again later"
        )


async def test_info_reports_the_agent_hook() -> None:
    info = await PluginServicer(Talker()).GetInfo(pb.GetInfoRequest(), None)  # type: ignore[arg-type]
    assert list(info.hooks) == [pb.HOOK_AGENT]


class Judge(Plugin):
    object_hooks = [ObjectHook("llm", ["before_create"], priority=5)]

    def on_object(self, change: ObjectChange) -> pb.ObjectHookResponse | None:
        if change.object["name"] == "bad":
            return reject_object("bad name")
        if change.object["name"] == "fix":
            return replace_object({**change.object, "name": "fixed"})
        return None


async def test_object_hook_answers_and_declarations() -> None:
    servicer = PluginServicer(Judge())
    context: Any = _Context()
    await servicer.Configure(pb.ConfigureRequest(config_json="{}"), context)
    info = await servicer.GetInfo(pb.GetInfoRequest(), context)
    assert list(info.scopes) == ["objects.hook"] and list(info.hooks) == [pb.HOOK_OBJECT_HOOKS]
    assert (info.object_hooks[0].object_type, info.object_hooks[0].priority) == ("llm", 5)

    def change(name: str) -> pb.ObjectHookRequest:
        return pb.ObjectHookRequest(
            event="before_create", object_type="llm", object_json=json.dumps({"name": name})
        )

    assert (await servicer.HandleObjectHook(change("ok"), context)).WhichOneof("decision") == "allow"
    assert (await servicer.HandleObjectHook(change("bad"), context)).reject.reason == "bad name"
    fixed = await servicer.HandleObjectHook(change("fix"), context)
    assert json.loads(fixed.modify.object_json) == {"name": "fixed"}
    with pytest.raises(ObjectHookError, match="object type 'user' is not hookable"):
        ObjectHook("user", ["before_create"])
    with pytest.raises(ObjectHookError, match="object hook event 'on_save' is not valid"):
        ObjectHook("llm", ["on_save"])

    class Forgetful(Plugin):
        object_hooks = [ObjectHook("app", ["after_create"])]

    with pytest.raises(TypeError, match="declares object_hooks but does not implement on_object"):
        PluginServicer(Forgetful())


def test_the_server_warns_about_registrations_it_cannot_use() -> None:
    usable, warnings = read_registrations(
        "p",
        [
            pb.ObjectHookRegistration(object_type="user", events=["before_create"]),
            pb.ObjectHookRegistration(object_type="app", events=["after_create", "on_save", "after_create"]),
        ],
    )
    assert usable == [{"object_type": "app", "events": ["after_create"], "priority": 0}]
    assert warnings == [
        "plugin p hooks object type 'user', which does not exist; object types: llm, app, plugin",
        "plugin p hooks event 'on_save' of app, which does not exist; events: before_create, before_update, "
        "before_delete, after_create, after_update, after_delete",
    ]
