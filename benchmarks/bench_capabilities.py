#!/usr/bin/env python3
"""Benchmarks what plugins acting on their own cost: an API write with and without an object hook,
an agent's chat turn against the same plugin's streamed endpoint, and how late scheduled runs start.

Run from the repository root: `.venv/bin/python benchmarks/bench_capabilities.py` (or `make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import secrets
import statistics
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path

import httpx
from support import (
    cancel_on_sigterm,
    free_port,
    measure,
    read_log,
    run_timed,
    serve_env,
    started,
    timed,
    use_venv_python,
    wait_ready,
    write_plugin,
)

from solstice.logs import configure_logging

BENCH_PLUGIN = '''#!{python}
"""The capabilities benchmark's plugin: an allowing object hook, an agent and a streamed route that
send the same two pieces, and a no-op task every second."""

from solstice.sdk import ObjectHook, Plugin, Schedule, respond, route, serve


class Bench(Plugin):
    name = "capabilities-bench"
    object_hooks = [ObjectHook("llm", ["before_update"])]
    schedules = [Schedule(id="tick", cron="* * * * * *")]

    def on_object(self, change):
        return None

    async def chat(self, chat):
        yield "hello "
        yield "world"

    @route("/stream", stream=True, media_type="text/plain")
    async def stream(self, request):
        yield "hello "
        yield "world"

    async def run_task(self, task):
        return None


if __name__ == "__main__":
    serve(Bench())
'''


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: sizes of the runs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=600, help="measured calls per mode")
    parser.add_argument("--blocks", type=int, default=6, help="interleaved blocks per mode")
    parser.add_argument("--warmup", type=int, default=60, help="unmeasured calls per mode first")
    parser.add_argument("--runs", type=int, default=15, help="scheduled runs to wait for")
    args = parser.parse_args(argv)
    if min(args.calls, args.blocks, args.runs) < 1:
        parser.error("sizes must be at least 1")
    return args


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    """Start a standalone plugin and `solstice serve`, register the plugin as grpc://, measure, print."""
    cancel_on_sigterm()
    plugin = write_plugin(workdir, BENCH_PLUGIN)
    token = f"sol_bench_{secrets.token_urlsafe(24)}"
    port = free_port()
    plugin_port = free_port()
    env = serve_env(workdir, port, token, ALLOW_INTERNAL_NETWORK_ACCESS="true")
    async with contextlib.AsyncExitStack() as stack:
        standalone = await stack.enter_async_context(
            started([str(plugin), "--listen", f"127.0.0.1:{plugin_port}"], workdir / "plugin.log")
        )
        serve = await stack.enter_async_context(
            started([sys.executable, "-m", "solstice", "serve"], workdir / "serve.log", env)
        )
        await wait_ready(f"http://127.0.0.1:{port}/readyz", serve, workdir / "serve.log")
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=120)
        )
        admin = {"Authorization": f"Bearer {token}"}
        hooks = ["object_hooks", "agent", "custom_endpoint", "scheduled_task"]
        created = await client.post("/api/v1/plugins", headers=admin, json={
            "name": "bench", "command": f"grpc://127.0.0.1:{plugin_port}", "hook_types": hooks,
        })  # fmt: skip
        if created.status_code != 201 or created.json()["status"] != "healthy":
            raise RuntimeError(
                f"the plugin did not start: {created.text}\n{read_log(workdir / 'plugin.log')}"
            )
        (
            await client.post("/api/v1/llms", headers=admin, json={"name": "llm", "vendor": "mock"})
        ).raise_for_status()
        app = await client.post("/api/v1/apps", headers=admin, json={"name": "ui", "agents": ["bench"]})
        key = {"Authorization": f"Bearer {app.json()['key']}"}
        counter = 0

        async def write(llm: str) -> None:
            nonlocal counter
            counter += 1
            answer = await client.patch(
                f"/api/v1/llms/{llm}", headers=admin, json={"options": {"n": counter}}
            )
            answer.raise_for_status()

        async def approved(on: bool) -> None:
            change = "approve" if on else "revoke"
            body = {"scopes": ["objects.hook"]}
            (
                await client.post(f"/api/v1/plugins/bench/scopes/{change}", headers=admin, json=body)
            ).raise_for_status()

        writes = await hook_on_and_off(write, approved, args)

        async def agent() -> None:
            answer = await client.post("/agents/bench/chat", headers=key, json={"message": "hi"})
            if "event: done" not in answer.text:
                raise RuntimeError(f"the agent did not finish: {answer.text}")

        async def endpoint() -> None:
            answer = await client.get("/plugins/bench/stream")
            if answer.text != "hello world":
                raise RuntimeError(f"the route answered {answer.text!r}")

        turns = await measure(
            {"streamed endpoint": endpoint, "agent turn": agent}, args.calls, args.blocks, args.warmup
        )
        lags = await schedule_lags(client, admin, args.runs)
        if serve.returncode is not None or standalone.returncode is not None:
            raise RuntimeError(f"a process exited during the runs:\n{read_log(workdir / 'serve.log')}")
    print_results(writes, turns, lags, args)


async def hook_on_and_off(
    write: Callable[[str], Awaitable[None]],
    approved: Callable[[bool], Awaitable[None]],
    args: argparse.Namespace,
) -> dict[str, float]:
    """PATCH latency with the hook's scope revoked and approved, in interleaved blocks (medians, ms)."""
    medians: dict[str, list[float]] = {"write, no hook": [], "write, one hook": []}
    per_block = max(1, args.calls // args.blocks)
    for block in range(args.blocks):
        for on in (False, True) if block % 2 == 0 else (True, False):
            await approved(on)
            await timed(lambda: write("llm"), args.warmup // args.blocks)
            name = "write, one hook" if on else "write, no hook"
            medians[name].append(statistics.median(await timed(lambda: write("llm"), per_block)))
    return {name: statistics.median(values) for name, values in medians.items()}


async def schedule_lags(client: httpx.AsyncClient, admin: dict[str, str], runs: int) -> list[float]:
    """How late each of `runs` runs of a one-second schedule started after its due time, in ms."""
    approved = await client.post(
        "/api/v1/plugins/bench/scopes/approve", headers=admin, json={"scopes": ["schedules.run"]}
    )
    approved.raise_for_status()
    found: list[dict[str, str]] = []
    for _ in range(runs * 4):
        await asyncio.sleep(1)
        answer = await client.get(
            "/api/v1/plugins/bench/schedules/tick/runs", headers=admin, params={"limit": 1000}
        )
        found = [r for r in answer.json()["data"] if r["status"] == "succeeded"]
        if len(found) >= runs:
            break
    return [
        (datetime.fromisoformat(r["started_at"]) - datetime.fromisoformat(r["due_at"])).total_seconds() * 1000
        for r in found[:runs]
    ]


def print_results(
    writes: dict[str, float], turns: dict[str, float], lags: list[float], args: argparse.Namespace
) -> None:
    """Each table with its baseline measured in the same run, and the ratios."""
    plain, hooked = writes["write, no hook"], writes["write, one hook"]
    print(f"\nAPI write (PATCH /api/v1/llms/…), {args.calls} sequential calls per mode, SQLite")
    print(f"{'mode':<20}{'p50 ms':>10}")
    for name, value in writes.items():
        print(f"{name:<20}{value:>10.3f}")
    print(f"one before_update hook: {hooked - plain:.3f} ms added ({hooked / plain:.2f}x)")
    endpoint, agent = turns["streamed endpoint"], turns["agent turn"]
    print(f"\nTwo pieces streamed by the same plugin, {args.calls} sequential calls per mode, whole answer")
    print(f"{'mode':<20}{'p50 ms':>10}")
    for name, value in turns.items():
        print(f"{name:<20}{value:>10.3f}")
    print(f"agent turn - streamed endpoint: {agent - endpoint:.3f} ms ({agent / endpoint:.2f}x)")
    if lags:
        print(
            f"\nScheduled runs (cron every second, SOLSTICE_SCHEDULE_INTERVAL 1 s): {len(lags)} runs started "
            f"{statistics.median(lags):.0f} ms after their due time at p50, {max(lags):.0f} ms at most"
        )
    else:
        print("\nScheduled runs: none succeeded while waiting")


def print_header() -> None:
    """What ran where."""
    cpu = platform.processor() or platform.machine()
    print(f"bench_capabilities: Python {platform.python_version()}, {cpu}, {os.cpu_count() or 1} CPUs")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse options, run everything, print the total time."""
    args = parse_args(argv)
    use_venv_python()
    configure_logging("warning")
    print_header()
    return run_timed(
        lambda workdir: bench(args, workdir),
        "solstice-bench-cap-",
        "interrupted; every process this benchmark started was stopped",
    )


if __name__ == "__main__":
    sys.exit(main())
