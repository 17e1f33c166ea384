"""Turns a plugin's stdout and stderr into structured log records tagged with the plugin."""

from __future__ import annotations

import logging
from collections import deque

import structlog

from solstice import safejson

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
# Lines that say why a process died: Go's panic and runtime errors. (A Python exception line is
# found as the first unindented line after a traceback header.)
_DEATH_PREFIXES = ("panic: ", "fatal error: ")
_TRACEBACK = "Traceback (most recent call last)"
# Explanations kept besides the tail, however much output followed them.
_MAX_EXPLANATIONS = 2


def _classify(line: str) -> tuple[int, str, dict[str, object]]:
    """Level, message and extra fields of one output line (hclog JSON, level prefix or plain)."""
    if line.startswith("{"):
        try:
            record = safejson.parse(line)  # a line nested too deep to parse is text, not a crash
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
        # The first lines explaining a death, each with its line number, and the line count.
        self._explanations: list[tuple[int, str]] = []
        self._in_traceback = False
        self._lines = 0

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
        """The last `count` lines joined for an error message, or "(no output)".

        A line that explains a death (a Go `panic:` or `fatal error:` line, a Python exception
        line) comes first even when more output followed it: the last lines of a crash are often
        stack frames that do not say what went wrong.
        """
        last = list(self._tail)[-count:]
        first_shown = self._lines - len(last)
        earlier = [line for number, line in self._explanations if number < first_shown]
        if earlier:
            return " | ".join([*earlier, "…", *last])
        return " | ".join(last) or "(no output)"

    def _emit(self, stream: str, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line.strip():
            return
        self._tail.append(line)
        self._note_explanation(line)
        self._lines += 1
        level, message, extra = _classify(line)
        if self._panicking or line.startswith(_PANIC_PREFIXES):
            # Everything after a panic header is the trace: keep it at error level.
            self._panicking = True
            level = max(level, logging.ERROR)
        self._log.log(level, message, plugin=self.slug, stream=stream, **extra)

    def _note_explanation(self, line: str) -> None:
        if line.startswith(_TRACEBACK):
            self._in_traceback = True
            return
        explains = line.startswith(_DEATH_PREFIXES)
        if self._in_traceback and not line[:1].isspace():
            # The first unindented line after the frames: `ValueError: bad config`.
            self._in_traceback = False
            explains = not line.startswith(("During handling", "The above exception"))
        if explains and len(self._explanations) < _MAX_EXPLANATIONS:
            self._explanations.append((self._lines, line))
