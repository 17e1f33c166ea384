"""Runs plugin hook chains for one request, applying each answer and each failure policy."""

from __future__ import annotations

import re
from typing import Any

import structlog

from solstice.gateway.routes import Step
from solstice.host import PluginError, PluginHost
from solstice.metrics import HOOK_FAIL_OPEN
from solstice.protocol import pb

log = structlog.get_logger("solstice.gateway")

# RFC 9110 token characters; a value may hold no control character but tab (CR and LF split it).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class PluginFailure(Exception):
    """A fail_closed plugin could not answer; the request ends with 503."""

    def __init__(self, slug: str, hook: str, reason: str) -> None:
        super().__init__(reason)
        self.slug = slug
        self.hook = hook
        self.reason = reason


class Blocked(Exception):
    """A plugin answered block: this response goes to the client instead."""

    def __init__(self, block: pb.Block) -> None:
        super().__init__(block.status)
        self.block = block


class Unauthorized(Exception):
    """The request is not authenticated (401) or not allowed (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def apply_modify(target: pb.HttpRequest | pb.HttpResponse, change: pb.Modify) -> None:
    """Apply header and body changes to a request or response message."""
    replaced = {h.name.lower() for h in change.set_headers} | {n.lower() for n in change.remove_headers}
    if replaced:
        kept = [
            pb.Header(name=h.name, value=h.value) for h in target.headers if h.name.lower() not in replaced
        ]
        del target.headers[:]
        target.headers.extend(kept)
        target.headers.extend(change.set_headers)
    if change.replace_body:
        target.body = change.body


class Hooks:
    """Calls plugins through the host, with the step's deadline, config and failure policy."""

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    async def call(self, step: Step, hook: str, ctx: pb.RequestContext, *args: Any) -> Any:
        """The plugin's answer, or None when it failed and its policy is fail_open."""
        ctx.config_id = step.config_id
        try:
            method = getattr(self.host.client(step.slug), hook)
            answer = await method(ctx, *args, timeout=step.timeout_ms / 1000)
        except PluginError as exc:
            reason = str(exc)
        else:
            problem = answer_problem(answer)
            if problem is None:
                return answer
            # An answer that cannot go on the wire is the plugin's failure, under its policy.
            reason = f"plugin {step.slug} answered {hook} with {problem}"
            log.error(reason, plugin=step.slug, hook=hook)
        if step.failure_policy == "fail_open":
            HOOK_FAIL_OPEN.labels(step.slug, hook).inc()
            log.warning("plugin failed; continuing (fail_open)", plugin=step.slug, hook=hook, error=reason)
            return None
        # The client hears only which plugin and hook; the reason may hold paths and plugin output.
        log.warning("plugin failed; request refused (fail_closed)", plugin=step.slug, hook=hook, error=reason)
        raise PluginFailure(step.slug, hook, reason)

    async def request_chain(
        self, steps: tuple[Step, ...], hook: str, ctx: pb.RequestContext, request: pb.HttpRequest
    ) -> None:
        """Run pre_auth or post_auth: each plugin sees the previous one's changes."""
        for step in steps:
            _apply(await self.call(step, hook, ctx, request), ctx, request)

    async def authenticate(
        self, steps: tuple[Step, ...], ctx: pb.RequestContext, request: pb.HttpRequest, credential: str
    ) -> pb.Authenticated:
        """The first plugin that authenticates wins; an explicit rejection ends the request."""
        for step in steps:
            answer: pb.AuthResponse | None = await self.call(step, "auth", ctx, request, credential)
            if answer is None:
                continue
            ctx.metadata.update(answer.metadata_updates)
            decision = answer.WhichOneof("decision")
            if decision == "authenticated":
                return answer.authenticated
            if decision == "rejected":
                raise Unauthorized(401, answer.rejected.reason or f"rejected by auth plugin {step.slug}")
        raise Unauthorized(401, "no auth plugin accepted the credential; send a valid API key")

    async def response_chain(
        self,
        steps: tuple[Step, ...],
        ctx: pb.RequestContext,
        request: pb.HttpRequest,
        response: pb.HttpResponse,
    ) -> None:
        """Run on_response over a buffered response; a block replaces the whole response."""
        for step in steps:
            answer = await self.call(
                step, "on_response", ctx, request, response, pb.RESPONSE_PHASE_COMPLETE, 0
            )
            _apply(answer, ctx, response)


def answer_problem(answer: Any) -> str | None:
    """Why a plugin's answer cannot be used (a bad status or header), or None; never quotes a value."""
    if not isinstance(answer, pb.HookResponse):
        return None
    action = answer.WhichOneof("action")
    if action == "block":
        status = answer.block.status
        if status and not 200 <= status <= 599:
            return f"a block status of {status}; use 200-599 (0 means 403)"
        headers = answer.block.headers
    elif action == "modify":
        headers = answer.modify.set_headers
    else:
        return None
    for header in headers:
        problem = _header_problem(header.name, header.value)
        if problem:
            return f"an invalid header {header.name[:100]!r}: {problem}"
    return None


def _header_problem(name: str, value: str) -> str | None:
    if not _HEADER_NAME.fullmatch(name):
        return "the name is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
    if _BAD_VALUE.search(value):
        return "its value holds a control character such as CR, LF or NUL"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return "its value has characters outside Latin-1; encode it (e.g. percent-encoding)"
    return None


def _apply(
    answer: pb.HookResponse | None, ctx: pb.RequestContext, target: pb.HttpRequest | pb.HttpResponse
) -> None:
    """Merge an answer's metadata, then block (raise) or apply its change to `target`."""
    if answer is None:
        return
    ctx.metadata.update(answer.metadata_updates)
    action = answer.WhichOneof("action")
    if action == "block":
        raise Blocked(answer.block)
    if action == "modify":
        apply_modify(target, answer.modify)
