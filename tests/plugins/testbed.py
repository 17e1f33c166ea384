#!/usr/bin/env python3
"""A plugin whose behaviour the tests steer through its config and environment.

TESTBED_MODE (environment, read before serving):
  serve (default) | no-handshake (prints nothing, sleeps) | exit (exits 3 at once, after
  writing to stderr) | bad-version (prints a handshake with protocol version 99)
Hooks: pre_auth answers per the request path:
  /noop -> continue; /block -> 403; /print -> print() a line;
  /stderr -> writes config "stderr_bytes" to stderr; /slow -> sleeps config "slow_ms";
  anything else -> sets X-Testbed-Pid.
auth: config "accept" key (default good-key) -> app "app_id"; "reject_key" (bad-key) -> rejected.
post_auth: sets header config "header" to "value" (after "slow_ms"), echoes metadata it saw.
on_response: "upper_chunks" upper-cases streamed chunks; "response_header" sets X-On-Response;
"record_file" gets a line at stream end; data_collection appends one line per record there.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from solstice.sdk import Plugin, abstain, authenticated, block, modify, pb, proceed, rejected, serve


class Testbed(Plugin):
    name = "testbed"
    version = "0.0.1"
    wants_stream_chunks = True

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}

    def configure(self, config: dict[str, Any]) -> None:
        if config.get("reject"):
            raise ValueError(f"config asked to be rejected: {config['reject']}")
        self.config = config

    async def pre_auth(self, ctx: pb.RequestContext, request: pb.HttpRequest) -> pb.HookResponse:
        if request.path == "/noop":
            return proceed()
        if request.path == "/block":
            return block(403, b"blocked by testbed")
        if request.path == "/stderr":
            size = int(self.config.get("stderr_bytes", 1024 * 1024))
            line = b"x" * 1023 + b"\n"
            for _ in range(size // len(line)):
                os.write(2, line)
            return proceed()
        if request.path == "/print":
            print("hello from print")
            return proceed()
        if request.path == "/slow":
            await asyncio.sleep(int(self.config.get("slow_ms", 100)) / 1000)
        return modify(set_headers={"X-Testbed-Pid": str(os.getpid())}, metadata={"seen": "1"})

    async def auth(self, ctx: pb.RequestContext, request: pb.HttpRequest, credential: str) -> pb.AuthResponse:
        if credential == self.config.get("accept", "good-key"):
            return authenticated(app_id=str(self.config.get("app_id", "7")), user_id="testbed-user")
        if credential == self.config.get("reject_key", "bad-key"):
            return rejected("testbed rejects this key")
        return abstain()

    async def post_auth(self, ctx: pb.RequestContext, request: pb.HttpRequest) -> pb.HookResponse:
        if "slow_ms" in self.config:
            await asyncio.sleep(int(self.config["slow_ms"]) / 1000)
        name = str(self.config.get("header", "X-Testbed"))
        seen = ",".join(f"{k}={v}" for k, v in sorted(ctx.metadata.items()))
        return modify(
            set_headers={
                name: str(self.config.get("value", "1")),
                "X-Seen-Metadata": seen,
                "X-Seen-Traceparent": ctx.trace.traceparent,
                "X-Seen-Llm": ctx.llm.slug,
            },
            metadata={name.lower(): str(self.config.get("value", "1"))},
        )

    async def on_response(
        self,
        ctx: pb.RequestContext,
        request: pb.HttpRequest,
        response: pb.HttpResponse,
        phase: int,
        chunk_index: int,
    ) -> pb.HookResponse:
        if phase == pb.RESPONSE_PHASE_STREAM_CHUNK and self.config.get("upper_chunks"):
            return modify(body=response.body.upper())
        if phase == pb.RESPONSE_PHASE_STREAM_END and self.config.get("record_file"):
            with open(self.config["record_file"], "a") as fh:
                fh.write(f"stream-end chunks={chunk_index} bytes={len(response.body)}\n")
            return proceed()
        if phase == pb.RESPONSE_PHASE_COMPLETE and self.config.get("response_header"):
            return modify(set_headers={"X-On-Response": str(self.config["response_header"])})
        return proceed()

    def data_collection(self, records: list[pb.ProxyRecord]) -> int:
        with open(self.config["record_file"], "a") as fh:
            for r in records:
                fh.write(
                    f"record status={r.status} model={r.model} prompt={r.prompt_tokens} "
                    f"completion={r.completion_tokens} total={r.total_tokens} app={r.context.app.id}"
                    f"{' truncated' if r.truncated else ''}"
                    f"{' caller=' + r.context.calling_plugin if r.context.calling_plugin else ''}\n"
                )
        return len(records)


def main() -> None:
    mode = os.environ.get("TESTBED_MODE", "serve")
    if mode == "no-handshake":
        time.sleep(3600)
    elif mode == "exit":
        sys.stderr.write("testbed: configured to exit before the handshake\n")
        sys.exit(3)
    elif mode == "bad-version":
        print("1|99|unix|/tmp/nowhere.sock|grpc|", flush=True)
        time.sleep(3600)
    serve(Testbed())


if __name__ == "__main__":
    main()
