"""The SDK's end of the service channel: which channel a call takes, and the refusals it makes itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from solstice.protocol import pb
from solstice.sdk import Plugin
from solstice.sdk.host import Host, HostError, Link, LlmStream, serving


def answer_with_slug(link: Link) -> asyncio.Task[None]:
    """Play the host of `link`: answer each kv_get with the link's slug as the value."""

    async def run() -> None:
        while (call := await link.outbox.get()) is not None:
            link.deliver(
                pb.ServiceReply(id=call.id, kv_value=pb.KvValue(found=True, value=link.slug.encode()))
            )

    return asyncio.create_task(run())


async def test_a_call_goes_over_the_channel_of_the_host_whose_rpc_is_served() -> None:
    host = Host(["kv.read"])
    first, second = Link("first", "token-1"), Link("second", "token-2")
    host.attach(first)
    host.attach(second)  # the newest channel must not take the calls made for the first host
    players = [answer_with_slug(first), answer_with_slug(second)]

    async def served_by(token: str) -> tuple[bytes | None, str]:
        serving(token, "request-1")
        return await host.kv.get("k"), host.slug

    assert await asyncio.create_task(served_by("token-1")) == (b"first", "first")
    assert await asyncio.create_task(served_by("token-2")) == (b"second", "second")
    # Outside any RPC, two channels name no host: refused at once rather than guessed.
    with pytest.raises(HostError) as refused:
        await host.kv.get("k")
    assert refused.value.code == "FAILED_PRECONDITION"
    assert "2 Solstice hosts have opened service channels" in refused.value.message
    host.detach(second)
    assert await host.kv.get("k") == b"first" and host.slug == "first"
    host.detach(first)
    await asyncio.gather(*players)


async def test_a_call_made_before_its_hosts_channel_opens_waits_for_it() -> None:
    host = Host(["kv.read"])

    async def early() -> bytes | None:
        serving("late-token")
        return await host.kv.get("k")

    waiting = asyncio.create_task(early())
    await asyncio.sleep(0.05)
    host.attach(other := Link("other", "other-token"))  # another host's channel is not this call's
    await asyncio.sleep(0.05)
    assert not waiting.done()
    late = Link("late", "late-token")
    player = answer_with_slug(late)
    host.attach(late)
    assert await asyncio.wait_for(waiting, 5) == b"late"
    host.detach(late)
    host.detach(other)
    await player


async def test_a_plugin_without_scopes_is_told_at_once() -> None:
    class Quiet(Plugin):
        name = "quiet"

    with pytest.raises(HostError) as refused:
        await asyncio.wait_for(Quiet().host.kv.get("k"), 1)
    assert refused.value.code == "FAILED_PRECONDITION"
    assert refused.value.message == (
        "this plugin declares no scopes, so Solstice opens no service channel to it; "
        "declare the scopes it needs (scopes = [...])"
    )


@pytest.mark.parametrize("ttl", [0, -1.5, float("nan")])
async def test_a_ttl_that_is_not_positive_is_refused_before_sending(ttl: float) -> None:
    host = Host(["kv.readwrite"])
    with pytest.raises(ValueError, match=f"ttl must be a positive number of seconds, got {ttl!r}"):
        await host.kv.put("k", "v", ttl=ttl)


async def test_llms_call_names_the_request_being_served() -> None:
    host = Host(["llms.call"])
    link = Link("p", "t")
    host.attach(link)

    async def call() -> None:
        serving("t", "request-42")
        await host.llms.call("mock", {"model": "m"})

    task = asyncio.create_task(call())
    sent = await asyncio.wait_for(link.outbox.get(), 5)
    assert sent is not None and sent.llms_call.origin_request_id == "request-42"
    link.deliver(pb.ServiceReply(id=sent.id, llm_call=pb.LlmCallPart(status=200)))
    await task
    host.detach(link)


async def test_a_task_started_for_a_host_follows_that_hosts_new_link_after_a_reload() -> None:
    host = Host(["kv.read"])
    before = Link("p", "token-before")
    host.attach(before)

    async def background() -> bytes | None:
        serving("token-before")  # as set by the configure() that started the task
        await reloaded.wait()
        return await host.kv.get("k")

    reloaded = asyncio.Event()
    task = asyncio.create_task(background())
    after = Link("p", "token-after")
    player = answer_with_slug(after)
    host.attach(after)  # the new instance's link, for the same slug; the old one drains, then closes
    assert await host.kv.get("k") == b"p"  # outside any RPC, links of one slug are one host's
    host.detach(before)
    reloaded.set()
    assert await asyncio.wait_for(task, 5) == b"p"
    host.detach(after)
    await player


async def test_a_reopened_link_ends_the_calls_waiting_on_the_old_stream() -> None:
    host = Host(["kv.read"])
    old = Link("p", "t")
    host.attach(old)
    waiting = asyncio.create_task(host.kv.get("k"))
    await asyncio.sleep(0.05)
    host.attach(Link("p", "t"))
    with pytest.raises(HostError) as failed:
        await asyncio.wait_for(waiting, 5)
    assert failed.value.code == "UNAVAILABLE"


async def test_a_streamed_completion_reads_as_tokens_however_its_events_are_split() -> None:
    events = (
        b'data: {"choices": [{"delta": {"role": "assistant"}}]}\n\n'
        b'data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n'
        b'data: {"choices": [{"delta": {"content": "lo, \\nworld"}}]}\n\n'
        b"data: [DONE]\n\n"
    )

    async def pieces() -> AsyncGenerator[pb.ServiceReply, None]:
        for start in range(7, len(events), 7):  # cut mid-event, mid-line, mid-JSON
            yield pb.ServiceReply(llm_call=pb.LlmCallPart(body=events[start : start + 7]), more=True)

    answer = LlmStream(pb.LlmCallPart(status=200, body=events[:7]), pieces())
    assert [token async for token in answer.tokens()] == ["Hel", "lo, \nworld"]
