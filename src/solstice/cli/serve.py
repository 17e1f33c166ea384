"""`solstice serve`: start the host and its plugins, run until SIGINT/SIGTERM, stop cleanly."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import structlog

from solstice.commands import CommandError, parse_command
from solstice.host import PluginError, PluginHost, PluginSpec
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


async def _serve(specs: list[PluginSpec]) -> int:
    settings = get_settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with PluginHost(settings) as host:
        results = await asyncio.gather(*(host.load(spec) for spec in specs), return_exceptions=True)
        for spec, result in zip(specs, results, strict=True):
            if isinstance(result, PluginError):
                log.error("plugin did not start", plugin=spec.slug, error=str(result))
            elif isinstance(result, BaseException):
                raise result
        log.info("solstice is running; press Ctrl-C to stop", plugins=[s.slug for s in specs])
        await stop.wait()
        log.info("stopping plugins")
    log.info("stopped")
    return 0


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
    return asyncio.run(_serve(specs))
