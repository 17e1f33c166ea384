"""Turns a plugin's stdout and stderr into structured log records tagged with the plugin."""

from __future__ import annotations

import json
import logging
from collections import deque

import structlog

# A single line longer than this is split; go-plugin uses the same 64 KiB buffer.
MAX_LINE_BYTES = 64 * 1024
_TAIL_LINES = 20
_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_PREFIXES = {f"[{name.upper()}]": level for name, level in _LEVELS.items()}
# Keys a plugin's JSON log line may not set: the host's own record fields.
_RESERVED = frozenset({"event", "plugin", "stream", "log_level", "level", "timestamp", "exc_info"})
_PANIC_PREFIXES = ("panic: ", "fatal error: ", "Traceback (most recent call last)")


def _classify(line: str) -> tuple[int, str, dict[str, object]]:
    """Level, message and extra fields of one output line (hclog JSON, level prefix or plain)."""
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and "@message" in record:
            level = _LEVELS.get(str(record.get("@level", "debug")).lower(), logging.DEBUG)
            extra = {k: v for k, v in record.items() if not k.startswith("@") and k not in _RESERVED}
            if "@module" in record:
                extra["module"] = record["@module"]
            return level, str(record["@message"]), extra
    for prefix, level in _PREFIXES.items():
        if line.startswith(prefix):
            return level, line[len(prefix) :].lstrip(), {}
    if line.startswith(_PANIC_PREFIXES):
        return logging.ERROR, line, {}
    return logging.INFO, line, {}


class PluginOutput:
    """Line-splits output of one plugin, logs each line and keeps the last stderr lines."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self._log = structlog.get_logger("solstice.plugin")
        self._partial: dict[str, bytes] = {}
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._panicking = False

    def feed(self, stream: str, data: bytes) -> None:
        """Accept a chunk from `stream` ("stdout" or "stderr"); complete lines are logged."""
        buffer = self._partial.get(stream, b"") + data
        *lines, rest = buffer.split(b"\n")
        while len(rest) > MAX_LINE_BYTES:
            lines.append(rest[:MAX_LINE_BYTES])
            rest = rest[MAX_LINE_BYTES:]
        self._partial[stream] = rest
        for raw in lines:
            self._emit(stream, raw)

    def flush(self) -> None:
        """Log any unterminated last lines; called when the process has exited."""
        for stream, rest in list(self._partial.items()):
            if rest:
                self._emit(stream, rest)
        self._partial.clear()
        self._panicking = False  # the process is gone; its successor starts clean

    def tail(self) -> list[str]:
        """The most recent non-empty output lines, oldest first."""
        return list(self._tail)

    def last_lines(self, count: int = 5) -> str:
        """The last `count` lines joined for an error message, or "(no output)"."""
        return " | ".join(list(self._tail)[-count:]) or "(no output)"

    def _emit(self, stream: str, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line.strip():
            return
        self._tail.append(line)
        level, message, extra = _classify(line)
        if self._panicking or line.startswith(_PANIC_PREFIXES):
            # Everything after a panic header is the trace: keep it at error level.
            self._panicking = True
            level = max(level, logging.ERROR)
        self._log.log(level, message, plugin=self.slug, stream=stream, **extra)
