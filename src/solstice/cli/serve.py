"""`solstice serve`: the control plane (API, store, host) until SIGINT/SIGTERM, then a clean stop."""

from __future__ import annotations

import re
import sys

import structlog
import uvicorn

from solstice.api.app import create_app
from solstice.commands import CommandError, parse_command
from solstice.host import PluginSpec
from solstice.logs import configure_logging
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


def run_serve(plugin_options: list[str]) -> int:
    """Run `solstice serve` to completion and return the exit status."""
    try:
        settings = get_settings()
    except SettingsError as exc:
        sys.stderr.write(f"solstice: {exc}\n")
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        specs = [parse_plugin_option(value) for value in plugin_options]
    except CommandError as exc:
        log.error("bad --plugin value", error=str(exc))
        return 2
    app = create_app(settings, specs)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        server_header=False,
    )
    server = uvicorn.Server(config)
    log.info("starting solstice", url=f"http://{settings.host}:{settings.port}")
    server.run()
    # uvicorn handles SIGINT/SIGTERM: it drains requests and runs the shutdown that stops plugins.
    return 0 if server.started else 1
