"""`solstice serve`: the control plane (API, store, host) until SIGINT/SIGTERM, then a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import structlog
import uvicorn
from fastapi import FastAPI

from solstice.api.application import create_app
from solstice.commands import CommandError, parse_command
from solstice.control.changes import ChangeFeed
from solstice.host import PluginSpec
from solstice.httpserver import BindError, HttpLimits, bind_sockets, limited_protocol
from solstice.logs import configure_logging
from solstice.oci.keys import KeyFormatError, public_keys_from_environ
from solstice.sealing import SecretKeyError, check_configured_keys
from solstice.security.policy import Policy, PolicyError
from solstice.security.upstreams import UpstreamAllowlistError, parse_upstream_allowlist
from solstice.settings import Settings, SettingsError, get_settings
from solstice.store.database import data_dir_problem

log = structlog.get_logger("solstice.serve")


def _slug_for(command: str) -> str:
    tail = command.rstrip("/").rsplit("/", 1)[-1]
    stem = tail.removesuffix(".py").rsplit(".", 1)[0] if tail.endswith(".py") else tail
    if stem in ("plugin", "main") and "/" in command:
        stem = command.rstrip("/").rsplit("/", 2)[-2]
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-") or "plugin"


def parse_plugin_option(value: str) -> PluginSpec:
    """Turn a --plugin value, [SLUG=]COMMAND, into a spec; raises CommandError when unusable."""
    slug, sep, command = value.partition("=")
    if not sep or "://" in slug:
        slug, command = _slug_for(value), value
    parse_command(command)
    return PluginSpec(slug=slug, command=command)


class _Server(uvicorn.Server):
    """uvicorn, except that a drained stop on SIGTERM or SIGINT exits with status 0.

    The stop also ends edges' long-polls at once (they would hold the drain for their whole wait).
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: set[asyncio.Future[None]] = set()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        feed = getattr(getattr(self._app, "state", None), "changes", None)
        if feed is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._close_feed, feed)

    def _close_feed(self, feed: ChangeFeed) -> None:
        task = asyncio.ensure_future(feed.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the signal after its shutdown, which makes the exit status -SIGTERM.
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _settings(**overrides: object) -> Settings:
    """The settings, with the command line's options (those given) over the environment's."""
    given = {name: value for name, value in overrides.items() if value is not None}
    return get_settings().model_copy(update=given)


def _start_problem(settings: Settings) -> str | None:
    """What stops either runtime from starting, in one sentence, or None."""
    problem = data_dir_problem(settings)
    if problem:
        return problem
    try:
        Policy.from_settings(settings)  # a bad PLUGIN_COMMAND_ALLOWLIST stops the start, not a load
    except PolicyError as exc:
        return str(exc)
    try:
        # A key file that is missing or unreadable would otherwise surface only at the first pull.
        public_keys_from_environ(settings.environ)
    except KeyFormatError as exc:
        return str(exc)
    try:
        parse_upstream_allowlist(settings.upstream_internal_allowlist)
        check_configured_keys(settings)  # the key that encrypts stored secrets, named but never shown
    except (UpstreamAllowlistError, SecretKeyError) as exc:
        return str(exc)
    return None


def run_serve(plugin_options: list[str], host: str | None = None, port: int | None = None) -> int:
    """Run `solstice serve` to completion and return the exit status."""
    try:
        settings = _settings(host=host, port=port)
    except SettingsError as exc:
        sys.stderr.write(f"solstice: {exc}\n")
        return 2
    configure_logging(settings.log_level, settings.log_format)
    problem = _start_problem(settings)
    if problem:
        sys.stderr.write(f"solstice: {problem}\n")
        return 2
    try:
        specs = [parse_plugin_option(value) for value in plugin_options]
    except CommandError as exc:
        sys.stderr.write(f"solstice: bad --plugin value: {exc}\n")
        return 2
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.slug in seen:
            sys.stderr.write(
                f"solstice: --plugin {seen[spec.slug]} and --plugin {spec.command} both get "
                f"slug {spec.slug!r}; name one of them with SLUG=COMMAND\n"
            )
            return 2
        seen[spec.slug] = spec.command
    return _run(create_app(settings, specs), settings, "starting solstice")


def _run(app: FastAPI, settings: Settings, message: str) -> int:
    """Serve `app` until SIGINT/SIGTERM; uvicorn drains requests and runs the shutdown."""
    try:
        # Bound before the application starts: a taken port stops us before any plugin runs.
        sockets = bind_sockets(settings.host, settings.port)
    except BindError as exc:
        sys.stderr.write(f"solstice: {exc}\n")
        return 1
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        http=limited_protocol(HttpLimits.from_settings(settings)),
        server_header=False,
        # Bounds the drain: a request stuck in a slow registry pull must not hold the exit for as
        # long as OCI_PLUGINS_TOTAL_TIMEOUT; cancelled, it stops its pull and extraction. uvicorn
        # takes whole seconds: a fraction rounds up, never cutting the drain short.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
    )
    server = _Server(config, app)
    log.info(message, url=f"http://{settings.host}:{settings.port}")
    try:
        server.run(sockets)
    finally:
        for sock in sockets:
            sock.close()
    return 0 if server.started else 1


def run_edge(
    control_url: str | None,
    namespace: str | None,
    config: Path | None = None,
    host: str | None = None,
    port: int | None = None,
) -> int:
    """Run `solstice edge` to completion and return the exit status."""
    try:
        settings = _settings(
            control_url=control_url, edge_namespace=namespace, edge_config=config, host=host, port=port
        )
    except SettingsError as exc:
        sys.stderr.write(f"solstice: {exc}\n")
        return 2
    configure_logging(settings.log_level, settings.log_format)
    problem = _edge_problem(settings)
    if problem:
        sys.stderr.write(f"solstice: {problem}\n")
        return 2
    from solstice.edge.application import create_edge_app

    return _run(create_edge_app(settings), settings, "starting solstice edge")


def _edge_problem(settings: Settings) -> str | None:
    """Why the edge cannot start, in one sentence, or None."""
    if settings.edge_config is not None:
        from solstice.edge.plugins_yaml import ConfigFileError, snapshot_from_file

        try:
            snapshot_from_file(settings.edge_config, settings.environ)
        except ConfigFileError as exc:
            return str(exc)
        return _common_edge_problem(settings)
    if not settings.control_url.startswith(("http://", "https://")):
        return (
            f"the control plane URL {settings.control_url!r} is not http(s)://; pass --control-url "
            "or set SOLSTICE_CONTROL_URL, e.g. http://control-plane:3000"
        )
    if not settings.edge_token:
        return "no edge token: set SOLSTICE_EDGE_TOKEN (solstice tokens create NAME --scope edge makes one)"
    if not re.fullmatch(r"[A-Za-z0-9_.-]{0,100}", settings.edge_namespace):
        return f"namespace {settings.edge_namespace!r} is invalid; use letters, digits, '.', '_' and '-'"
    return _common_edge_problem(settings)


def _common_edge_problem(settings: Settings) -> str | None:
    problem = _start_problem(settings)
    if problem:
        return problem
    cache = settings.edge_oci_cache_dir
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / ".solstice-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        return (
            f"the OCI cache directory {cache} is not writable ({exc.strerror or exc}); "
            "set OCI_PLUGINS_CACHE_DIR to a writable directory"
        )
    return None
