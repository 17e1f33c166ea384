"""`solstice serve`: the control plane (API, store, host) until SIGINT/SIGTERM, then a clean stop."""

from __future__ import annotations

import contextlib
import re
import signal
import sys
from collections.abc import Iterator

import structlog
import uvicorn

from solstice.api.app import create_app
from solstice.commands import CommandError, parse_command
from solstice.host import PluginSpec
from solstice.logs import configure_logging
from solstice.security.policy import Policy, PolicyError
from solstice.settings import SettingsError, get_settings

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
    """uvicorn, except that a drained stop on SIGTERM or SIGINT exits with status 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the signal after its shutdown, which makes the exit status -SIGTERM.
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_serve(plugin_options: list[str]) -> int:
    """Run `solstice serve` to completion and return the exit status."""
    try:
        settings = get_settings()
    except SettingsError as exc:
        sys.stderr.write(f"solstice: {exc}\n")
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        Policy.from_settings(settings)  # a bad PLUGIN_COMMAND_ALLOWLIST stops the start, not a load
    except PolicyError as exc:
        sys.stderr.write(f"solstice: {exc}\n")
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
    app = create_app(settings, specs)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        http="httptools",
        server_header=False,
    )
    server = _Server(config)
    log.info("starting solstice", url=f"http://{settings.host}:{settings.port}")
    server.run()
    # uvicorn handles SIGINT/SIGTERM: it drains requests and runs the shutdown that stops plugins.
    return 0 if server.started else 1
