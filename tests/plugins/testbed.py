#!/usr/bin/env python3
"""A plugin whose behaviour the tests steer through its config and environment.

TESTBED_MODE (environment, read before serving):
  serve (default) | no-handshake (prints nothing, sleeps) | exit (exits 3 at once, after
  writing to stderr) | bad-version (prints a handshake with protocol version 99)
Hooks: pre_auth answers per the request path:
  /noop -> continue; /block -> 403; /print -> print() a line;
  /stderr -> writes config "stderr_bytes" to stderr; /slow -> sleeps config "slow_ms";
  anything else -> sets X-Testbed-Pid.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from solstice.sdk import Plugin, block, modify, pb, proceed, serve


class Testbed(Plugin):
    name = "testbed"
    version = "0.0.1"

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
