"""Captures a launched plugin's stdout and stderr and streams them to the host.

go-plugin hosts read a plugin's output through plugin.GRPCStdio/StreamStdio. Unlike
go-plugin, the capture never blocks the plugin: when no host is reading, or the host
reads too slowly, output goes to the process's original stderr, which the host drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

from solstice.protocol import gp, gp_grpc

_QUEUE_LIMIT = 256
_READ_SIZE = 64 * 1024


class StdioCapture(gp_grpc.GRPCStdioServicer):
    """Redirects fds 1 and 2 into pipes and serves what arrives there over gRPC."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[gp.StdioData | None] | None = None
        self._fallback_fd = -1

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start capturing; call once, after the handshake line was printed."""
        self._loop = loop
        sys.stdout.flush()
        sys.stderr.flush()
        self._fallback_fd = os.dup(2)
        for fd, channel in ((1, gp.StdioData.STDOUT), (2, gp.StdioData.STDERR)):
            read_fd, write_fd = os.pipe()
            os.dup2(write_fd, fd)
            os.close(write_fd)
            threading.Thread(
                target=self._pump, args=(read_fd, channel), name=f"stdio-{fd}", daemon=True
            ).start()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    def close(self) -> None:
        """End an open StreamStdio call."""
        if self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)

    def _pump(self, read_fd: int, channel: int) -> None:
        while data := os.read(read_fd, _READ_SIZE):
            try:
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._deliver, channel, data)
            except RuntimeError:  # loop closed: we are exiting
                self._write_fallback(data)

    def _deliver(self, channel: int, data: bytes) -> None:
        queue = self._queue
        if queue is not None and queue.qsize() < _QUEUE_LIMIT - 1:
            queue.put_nowait(gp.StdioData(channel=channel, data=data))
        else:
            self._write_fallback(data)

    def _write_fallback(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self._fallback_fd, data)

    async def StreamStdio(self, request: Any, context: Any) -> AsyncIterator[gp.StdioData]:
        queue: asyncio.Queue[gp.StdioData | None] = asyncio.Queue(_QUEUE_LIMIT)
        previous, self._queue = self._queue, queue
        if previous is not None:
            previous.put_nowait(None)  # one reader at a time: the newest wins
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            if self._queue is queue:
                self._queue = None
