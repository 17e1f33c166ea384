"""An OpenAI-compatible responder for tests, demos and benchmarks: echoes the prompt, counts words."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

MODEL = "solstice-mock-1"
# The LLM options the mock vendor reads, in milliseconds: a delay before the answer, and between
# streamed chunks. A minute at most, so a typo cannot hold requests until clients give up.
DELAY_OPTIONS = ("delay_ms", "chunk_delay_ms")
MAX_DELAY_MS = 60_000


def check_options(options: Mapping[str, Any]) -> Mapping[str, Any]:
    """The options, if the delays the mock reads are numbers of 0 to MAX_DELAY_MS; else ValueError."""
    for name in DELAY_OPTIONS:
        value = options.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_DELAY_MS:
            raise ValueError(
                f"options.{name} is {json.dumps(value)[:40]}; it must be a number of milliseconds "
                f"from 0 to {MAX_DELAY_MS}"
            )
    return options


def delay_seconds(options: Mapping[str, Any], name: str) -> float:
    """A delay option in seconds; 0 for a value stored before options were checked."""
    try:
        check_options({name: options.get(name, 0)})
    except ValueError:
        return 0.0
    return float(options.get(name, 0)) / 1000


def _redact(name: str, value: str) -> str:
    # The echo shows that a credential arrived, never the credential itself.
    if name.lower() in ("authorization", "x-api-key", "api-key"):
        return f"{value[:7]}***{value[-4:]}" if len(value) > 16 else "***"
    return value


def _words(text: str) -> int:
    return len(text.split())


def _prompt_of(path: str, body: Mapping[str, Any]) -> str:
    if path.endswith("chat/completions"):
        messages = body.get("messages") or []
        users = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        last = users[-1] if users else ""
        return last if isinstance(last, str) else json.dumps(last)
    prompt = body.get("prompt", body.get("input", ""))
    return prompt if isinstance(prompt, str) else " ".join(map(str, prompt))


def answer(
    path: str, body: Mapping[str, Any], headers: Sequence[tuple[str, str]] = ()
) -> tuple[int, dict[str, Any]]:
    """The status and JSON body for a buffered request to `path` (relative to /v1).

    `echo` is a testing aid: it answers with the headers and body the mock received.
    """
    path = path.strip("/").removeprefix("v1/")
    model = str(body.get("model") or MODEL)
    if path == "echo":
        return 200, {"headers": [[k.lower(), _redact(k, v)] for k, v in headers], "body": body}
    if path == "models":
        return 200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "solstice"}]}
    prompt = _prompt_of(path, body)
    usage = {
        "prompt_tokens": _words(prompt),
        "completion_tokens": _words(prompt),
        "total_tokens": 2 * _words(prompt),
    }
    created = int(time.time())
    if path == "chat/completions":
        message = {"role": "assistant", "content": f"echo: {prompt}"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return 200, {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": usage,
        }
    if path == "completions":
        choice = {"index": 0, "text": f"echo: {prompt}", "finish_reason": "stop"}
        return 200, {
            "id": "cmpl-mock",
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": usage,
        }
    if path == "embeddings":
        digest = hashlib.sha256(prompt.encode()).digest()
        vector = [round(b / 255, 4) for b in digest[:16]]
        usage = {"prompt_tokens": _words(prompt), "total_tokens": _words(prompt)}
        return 200, {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": model,
            "usage": usage,
        }
    return 404, {
        "error": {
            "message": f"the mock LLM has no endpoint {path!r}",
            "type": "not_found_error",
            "param": None,
            "code": None,
        }
    }


async def stream(path: str, body: Mapping[str, Any], delay_s: float = 0.0) -> AsyncIterator[bytes]:
    """Server-sent events for a streamed completion: one chunk per word, usage last, then [DONE]."""
    path = path.strip("/").removeprefix("v1/")
    prompt = _prompt_of(path, body)
    model = str(body.get("model") or MODEL)
    words = f"echo: {prompt}".split(" ")
    for index, word in enumerate(words):
        if delay_s:
            await asyncio.sleep(delay_s)
        text = word if index == 0 else f" {word}"
        delta = {"delta": {"content": text}} if path == "chat/completions" else {"text": text}
        chunk = {
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, **delta, "finish_reason": None}],
        }
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    usage = {
        "prompt_tokens": _words(prompt),
        "completion_tokens": _words(prompt),
        "total_tokens": 2 * _words(prompt),
    }
    final = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": usage,
    }
    yield f"data: {json.dumps(final)}\n\n".encode()
    yield b"data: [DONE]\n\n"
