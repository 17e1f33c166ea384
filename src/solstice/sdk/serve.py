"""Runs a Plugin: launched by a host (go-plugin handshake) or standalone for grpc://."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import tempfile
import traceback
from collections.abc import Mapping
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from solstice.protocol import gp, gp_grpc, pb_grpc
from solstice.protocol.handshake import (
    APP_PROTOCOL_VERSION,
    ENV_PROTOCOL_VERSIONS,
    ENV_UNIX_SOCKET_DIR,
    HEALTH_SERVICE,
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    HandshakeLine,
)
from solstice.protocol.transport import GRPC_OPTIONS
from solstice.sdk.plugin import Plugin
from solstice.sdk.servicer import PluginServicer
from solstice.sdk.stdio import StdioCapture

ENV_LISTEN = "SOLSTICE_PLUGIN_LISTEN"
USAGE = (
    "This is a Solstice plugin: register it with a file:///absolute/path command so the host "
    f"starts it, or serve it for grpc:// with --listen HOST:PORT (or {ENV_LISTEN}=HOST:PORT).\n"
)
# How long in-flight calls may finish once a stop was asked for.
_STANDALONE_GRACE_S = 5.0
_LAUNCHED_GRACE_S = 1.0
_PARENT_POLL_S = 1.0

log = logging.getLogger("solstice.sdk")


class _Controller(gp_grpc.GRPCControllerServicer):
    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop

    async def Shutdown(self, request: gp.Empty, context: Any) -> gp.Empty:
        self._stop.set()
        return gp.Empty()


def _build_server(plugin: Plugin) -> tuple[grpc.aio.Server, health_aio.HealthServicer]:
    server = grpc.aio.server(options=GRPC_OPTIONS)
    pb_grpc.add_PluginServicer_to_server(PluginServicer(plugin), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    return server, health


async def _set_health(health: health_aio.HealthServicer, status: int) -> None:
    for service in ("", HEALTH_SERVICE):
        await health.set(service, status)


def _install_stop_signals(stop: asyncio.Event, signals: tuple[int, ...]) -> None:
    loop = asyncio.get_running_loop()
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)


async def _watch_parent(stop: asyncio.Event, parent: int) -> None:
    # Backstop for hosts that cannot ask the kernel to kill us when they die.
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("host process %d is gone; exiting", parent)
            stop.set()
            return
        await asyncio.sleep(_PARENT_POLL_S)


async def serve_launched(plugin: Plugin, env: Mapping[str, str]) -> int:
    """Serve on a unix socket and announce it with the go-plugin handshake line."""
    offered = {v.strip() for v in env.get(ENV_PROTOCOL_VERSIONS, "").split(",") if v.strip()}
    if offered and str(APP_PROTOCOL_VERSION) not in offered:
        log.error(
            "host offers protocol versions %s; this plugin speaks %d",
            ",".join(sorted(offered)),
            APP_PROTOCOL_VERSION,
        )
    socket_dir = env.get(ENV_UNIX_SOCKET_DIR) or tempfile.gettempdir()
    socket_path = os.path.join(socket_dir, f"plugin-{os.getpid()}-{secrets.token_hex(4)}.sock")

    stop = asyncio.Event()
    server, health = _build_server(plugin)
    gp_grpc.add_GRPCControllerServicer_to_server(_Controller(stop), server)
    capture = StdioCapture()
    gp_grpc.add_GRPCStdioServicer_to_server(capture, server)
    await _set_health(health, health_pb2.HealthCheckResponse.SERVING)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # the host decides when we stop
    _install_stop_signals(stop, (signal.SIGTERM,))
    server.add_insecure_port(f"unix:{socket_path}")
    await server.start()

    sys.stdout.write(HandshakeLine(network="unix", address=socket_path).format() + "\n")
    sys.stdout.flush()
    capture.start(loop)
    watcher = asyncio.create_task(_watch_parent(stop, os.getppid()))
    try:
        await stop.wait()
    finally:
        # Also when a handler ends the process (sys.exit) and asyncio cancels this task: a server
        # left running would be torn down by the garbage collector after the loop closed, and its
        # complaints would bury the plugin's last words in what the host reports.
        watcher.cancel()
        try:
            await _set_health(health, health_pb2.HealthCheckResponse.NOT_SERVING)
            # The output stream ends first, on its own: cancelled by the server's stop, it would
            # leave a CancelledError traceback as the plugin's last words. Output from calls that
            # still finish goes to the original stderr, which the host reads too.
            capture.close()
            await asyncio.sleep(0)
            await server.stop(_LAUNCHED_GRACE_S if stop.is_set() else None)
        finally:
            capture.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path)
    return 0


async def serve_standalone(plugin: Plugin, listen: str) -> int:
    """Serve on HOST:PORT for grpc:// until SIGTERM or SIGINT, then drain and exit."""
    server, health = _build_server(plugin)
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError as exc:
        sys.stderr.write(f"cannot listen on {listen!r}: {exc}; pass --listen HOST:PORT\n")
        return 1
    stop = asyncio.Event()
    _install_stop_signals(stop, (signal.SIGTERM, signal.SIGINT))
    await _set_health(health, health_pb2.HealthCheckResponse.SERVING)
    await server.start()
    host = listen.rsplit(":", 1)[0]
    sys.stdout.write(f"listening on grpc://{host}:{port}\n")
    sys.stdout.flush()
    await stop.wait()
    await _set_health(health, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.stop(_STANDALONE_GRACE_S)
    return 0


def serve(plugin: Plugin, argv: list[str] | None = None) -> NoReturn:
    """Run the plugin the way it was started, then exit the process."""
    parser = argparse.ArgumentParser(description=type(plugin).description or None)
    parser.add_argument("--listen", metavar="HOST:PORT", help="serve standalone for grpc://")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    env = os.environ
    if env.get(MAGIC_COOKIE_KEY) == MAGIC_COOKIE_VALUE:
        try:
            code = asyncio.run(serve_launched(plugin, env))
        except SystemExit as exc:
            _exit_now(exc)
    elif listen := args.listen or env.get(ENV_LISTEN):
        code = asyncio.run(serve_standalone(plugin, listen))
    else:
        sys.stderr.write(USAGE)
        code = 1
    sys.exit(code)


def _exit_now(exc: SystemExit) -> NoReturn:
    """End a launched plugin whose handler called sys.exit, its traceback the last thing it says."""
    traceback.print_exception(exc)
    sys.stdout.flush()
    sys.stderr.flush()
    # Interpreter teardown would collect the handler's task after this and log it again ("Task
    # exception was never retrieved"), at a moment that varies from run to run.
    os._exit(exc.code if isinstance(exc.code, int) else 1)
