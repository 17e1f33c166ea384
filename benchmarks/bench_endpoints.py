#!/usr/bin/env python3
"""Benchmarks custom endpoints and the host service API: a no-op route through `solstice serve`
against the same plugin's raw gRPC call, and KV calls per second from one plugin.

Run from the repository root: `.venv/bin/python benchmarks/bench_endpoints.py` (or `make bench`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
import httpx
from support import (
    cancel_on_sigterm,
    free_port,
    measure,
    read_log,
    run_timed,
    serve_env,
    started,
    use_venv_python,
    wait_ready,
    write_plugin,
)

from solstice.logs import configure_logging
from solstice.protocol import pb, pb_grpc
from solstice.protocol.transport import GRPC_OPTIONS

BENCH_PLUGIN = '''#!{python}
"""The endpoint benchmark's plugin: a no-op route, and a route that times its own service calls."""

import asyncio
import time

from solstice.sdk import Plugin, respond, route, serve


class Bench(Plugin):
    name = "endpoint-bench"
    scopes = ["kv.readwrite", "llms.read"]

    @route("/noop")
    def noop(self, request):
        return respond(b"")

    @route("/calls/{{count}}/{{concurrency}}")
    async def calls(self, request):
        count, width = int(request.params["count"]), int(request.params["concurrency"])
        value = b"v" * 100
        kinds = {{
            "kv.put": lambda i: self.host.kv.put(f"key-{{i % 1000}}", value),
            "kv.get": lambda i: self.host.kv.get(f"key-{{i % 1000}}"),
            "llms.list": lambda i: self.host.llms.list(),
        }}
        rates = {{}}
        for name, call in kinds.items():
            began = time.perf_counter()
            for start in range(0, count, width):
                await asyncio.gather(*(call(i) for i in range(start, min(start + width, count))))
            rates[name] = count / (time.perf_counter() - began)
        return respond(json=rates)


if __name__ == "__main__":
    serve(Bench())
'''


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: sizes of the runs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per mode")
    parser.add_argument("--blocks", type=int, default=10, help="interleaved blocks per mode")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls per mode first")
    parser.add_argument("--kv-calls", type=int, default=2000, help="service calls per kind and width")
    args = parser.parse_args(argv)
    if min(args.calls, args.blocks, args.kv_calls) < 1:
        parser.error("sizes must be at least 1")
    return args


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    """Start a standalone plugin and `solstice serve`, register the plugin as grpc://, measure, print."""
    cancel_on_sigterm()
    plugin = write_plugin(workdir, BENCH_PLUGIN)
    token = f"sol_bench_{secrets.token_urlsafe(24)}"
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    plugin_port = free_port()
    env = serve_env(workdir, port, token, ALLOW_INTERNAL_NETWORK_ACCESS="true")
    async with contextlib.AsyncExitStack() as stack:
        standalone = await stack.enter_async_context(
            started([str(plugin), "--listen", f"127.0.0.1:{plugin_port}"], workdir / "plugin.log")
        )
        serve = await stack.enter_async_context(
            started([sys.executable, "-m", "solstice", "serve"], workdir / "serve.log", env)
        )
        await wait_ready(f"{gateway}/readyz", serve, workdir / "serve.log")
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=gateway, trust_env=False, timeout=120)
        )
        admin = {"Authorization": f"Bearer {token}"}
        created = await client.post("/api/v1/plugins", headers=admin, json={
            "name": "bench", "command": f"grpc://127.0.0.1:{plugin_port}", "hook_types": ["custom_endpoint"],
        })  # fmt: skip
        if created.status_code != 201 or created.json()["status"] != "healthy":
            raise RuntimeError(
                f"the plugin did not start: {created.text}\n{read_log(workdir / 'plugin.log')}"
            )
        approved = await client.post(
            "/api/v1/plugins/bench/scopes/approve",
            headers=admin,
            json={"scopes": ["kv.readwrite", "llms.read"]},
        )
        approved.raise_for_status()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{plugin_port}", options=GRPC_OPTIONS)
        stack.push_async_callback(channel.close)
        stub = pb_grpc.PluginStub(channel)
        message = pb.EndpointRequest(request=pb.HttpRequest(method="GET", path="/noop"), route="/noop")

        async def raw() -> None:
            await stub.HandleEndpoint(message, timeout=60)

        async def endpoint() -> None:
            (await client.get("/plugins/bench/noop")).raise_for_status()

        async def healthz() -> None:
            (await client.get("/healthz")).raise_for_status()

        modes = {"raw gRPC": raw, "HTTP /healthz": healthz, "HTTP endpoint": endpoint}
        latency = await measure(modes, args.calls, args.blocks, args.warmup)
        rates = {}
        for width in (1, 32):
            answer = await client.get(f"/plugins/bench/calls/{args.kv_calls}/{width}")
            answer.raise_for_status()
            rates[width] = answer.json()
        if serve.returncode is not None or standalone.returncode is not None:
            raise RuntimeError(f"a process exited during the runs:\n{read_log(workdir / 'serve.log')}")
    print_results(latency, rates, args)


def print_results(
    latency: dict[str, float], rates: dict[int, dict[str, float]], args: argparse.Namespace
) -> None:
    """The latency table with the added p50 and ratios, then service calls per second."""
    raw, health, endpoint = latency["raw gRPC"], latency["HTTP /healthz"], latency["HTTP endpoint"]
    print(
        f"\nNo-op unary endpoint, {args.calls} sequential calls per mode in {args.blocks} interleaved blocks"
    )
    print(f"{'mode':<16}{'p50 ms':>10}")
    for name, value in latency.items():
        print(f"{name:<16}{value:>10.3f}")
    print(f"endpoint - raw gRPC:  {endpoint - raw:.3f} ms added (endpoint/raw {endpoint / raw:.2f}x)")
    print(
        f"endpoint - /healthz:  {endpoint - health:.3f} ms added by routing to the plugin (same HTTP client)"
    )
    print(f"\nService calls from one plugin over its channel (SQLite), {args.kv_calls} per kind")
    print(f"{'concurrency':<14}{'kv.put/s':>12}{'kv.get/s':>12}{'llms.list/s':>14}{'get/list':>10}")
    for width, rate in rates.items():
        print(
            f"{width:<14}{rate['kv.put']:>12.0f}{rate['kv.get']:>12.0f}{rate['llms.list']:>14.0f}"
            f"{rate['kv.get'] / rate['llms.list']:>10.2f}"
        )
    print("(llms.list is answered from memory: the channel's round trip without the database)")


def print_header() -> None:
    """What ran where."""
    cpu = platform.processor() or platform.machine()
    print(f"bench_endpoints: Python {platform.python_version()}, {cpu}, {os.cpu_count() or 1} CPUs")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse options, run everything, print the total time."""
    args = parse_args(argv)
    use_venv_python()
    configure_logging("warning")
    print_header()
    return run_timed(
        lambda workdir: bench(args, workdir),
        "solstice-bench-ep-",
        "interrupted; every process this benchmark started was stopped",
    )


if __name__ == "__main__":
    sys.exit(main())
