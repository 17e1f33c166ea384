"""Captures a launched plugin's stdout and stderr and streams them to the host.

go-plugin hosts read a plugin's output through plugin.GRPCStdio/StreamStdio. Unlike
go-plugin, the capture never blocks the plugin: output that arrives before the host
opens the stream is held (up to a limit), and output no one reads goes to the process's
original stderr, which the host drains too.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

from solstice.protocol import gp, gp_grpc

_QUEUE_LIMIT = 256
_READ_SIZE = 64 * 1024
_PENDING_LIMIT = 256 * 1024
_JOIN_TIMEOUT_S = 2.0


class StdioCapture(gp_grpc.GRPCStdioServicer):
    """Redirects fds 1 and 2 into pipes and serves what arrives there over gRPC."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[gp.StdioData | None] | None = None
        self._saved: dict[int, int] = {}
        self._pumps: list[threading.Thread] = []
        self._pending: list[gp.StdioData] = []
        self._pending_bytes = 0
        self._attached = False
        # Set by close(): from then on output goes straight to the original stderr, which the host
        # drains, because the stream may never be read again (the plugin may be dying).
        self._closing = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start capturing; call once, after the handshake line was printed."""
        self._loop = loop
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, channel in ((1, gp.StdioData.STDOUT), (2, gp.StdioData.STDERR)):
            self._saved[fd] = os.dup(fd)
            read_fd, write_fd = os.pipe()
            os.dup2(write_fd, fd)
            os.close(write_fd)
            pump = threading.Thread(
                target=self._pump, args=(read_fd, channel), name=f"stdio-{fd}", daemon=True
            )
            pump.start()
            self._pumps.append(pump)
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper):
                with contextlib.suppress(ValueError):
                    stream.reconfigure(line_buffering=True)

    def close(self) -> None:
        """Give fds 1 and 2 back, hand what was captured to the original stderr, end the stream."""
        if not self._saved or self._loop is None or self._closing:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        self._closing = True
        # What was captured but not streamed yet goes first, so the order is kept.
        while self._queue is not None and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                self._write_fallback(item.data)
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)  # closes the pipes' last write ends: the pumps reach EOF
        for pump in self._pumps:
            pump.join(_JOIN_TIMEOUT_S)
        # Runs after the pumps' deliveries, which were scheduled first.
        self._loop.call_soon(self._finish)

    def _finish(self) -> None:
        for item in self._pending:
            self._write_fallback(item.data)
        self._pending.clear()
        if self._queue is not None:
            self._queue.put_nowait(None)

    def _pump(self, read_fd: int, channel: gp.StdioData.Channel) -> None:
        while data := os.read(read_fd, _READ_SIZE):
            if self._closing:
                self._write_fallback(data)
                continue
            try:
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._deliver, channel, data)
            except RuntimeError:  # loop closed: we are exiting
                self._write_fallback(data)
        os.close(read_fd)

    def _deliver(self, channel: gp.StdioData.Channel, data: bytes) -> None:
        if self._closing:
            self._write_fallback(data)
            return
        item = gp.StdioData(channel=channel, data=data)
        queue = self._queue
        if queue is not None and queue.qsize() < _QUEUE_LIMIT - 1:
            queue.put_nowait(item)
        elif not self._attached and self._pending_bytes + len(data) <= _PENDING_LIMIT:
            self._pending.append(item)  # the host opens the stream right after connecting
            self._pending_bytes += len(data)
        else:
            self._write_fallback(data)

    def _write_fallback(self, data: bytes) -> None:
        with contextlib.suppress(OSError, KeyError):
            os.write(self._saved[2], data)

    async def StreamStdio(self, request: Any, context: Any) -> AsyncIterator[gp.StdioData]:
        queue: asyncio.Queue[gp.StdioData | None] = asyncio.Queue()
        previous, self._queue = self._queue, queue
        self._attached = True
        if previous is not None:
            previous.put_nowait(None)  # one reader at a time: the newest wins
        for pending in self._pending:
            queue.put_nowait(pending)
        self._pending.clear()
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            if self._queue is queue:
                self._queue = None
