"""How Solstice's HTTP servers take connections: listening sockets, and limits on slow or huge requests.

uvicorn's httptools protocol buffers a request head without bound and waits forever for a head or a
body that trickles in; the protocol here answers 431 and 408 instead and closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from solstice.settings import Settings

log = structlog.get_logger("solstice.http")


@dataclass(frozen=True)
class HttpLimits:
    """What one client connection may take: head size, and seconds for the head and for the body."""

    max_header_bytes: int
    header_timeout: float
    body_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        """The limits of SOLSTICE_HTTP_MAX_HEADER_BYTES, SOLSTICE_HTTP_HEADER_TIMEOUT and _BODY_TIMEOUT."""
        return cls(settings.http_max_header_bytes, settings.http_header_timeout, settings.http_body_timeout)


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a request that was answered and closed."""


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head and head and body deadlines."""

    limits: ClassVar[HttpLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_head = True  # waiting for (the rest of) a request head
        self._head_bytes = 0
        self._head_timer: TimerHandle | None = None
        self._body_timer: TimerHandle | None = None
        self._refused = False

    # -- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server's connections are full transports (plain or TLS), as uvicorn expects.
        assert isinstance(transport, asyncio.Transport)
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel(head=True, body=True)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            # Counted before parsing: httptools itself keeps an unfinished header line in memory.
            self._head_bytes += len(data)
            if self._head_timer is None:
                self._arm_head_timer()
        super().data_received(data)
        if self._in_head and not self._refused and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431, f"the request head is over the {self.limits.max_header_bytes} byte limit")

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a refusal raised inside the parser already answered
            super().send_400_response(msg)

    # -- parser callbacks --------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self._refuse(431, f"the request head is over the {self.limits.max_header_bytes} byte limit")
            raise _Refused
        self._in_head = False
        self._cancel(head=True)
        super().on_headers_complete()
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_late)

    def on_message_complete(self) -> None:
        self._cancel(body=True)
        self._in_head = True
        # The rest of this chunk is not counted: at most one read more than the limit is held.
        self._head_bytes = 0
        super().on_message_complete()

    # -- deadlines -----------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._cancel(head=True)
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)

    def _cancel(self, *, head: bool = False, body: bool = False) -> None:
        if head and self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if body and self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _busy(self) -> bool:
        # A response is being produced: the client waits on us, not we on it.
        return self.cycle is not None and not self.cycle.response_complete

    def _head_late(self) -> None:
        self._head_timer = None
        if self._refused or self.transport.is_closing() or not self._in_head:
            return
        if self._busy():
            self._arm_head_timer()
            return
        if self._head_bytes == 0:
            self.transport.close()  # an idle connection: nothing to answer
            return
        self._refuse(408, f"the request head did not arrive within {self.limits.header_timeout:g} s")

    def _body_late(self) -> None:
        self._body_timer = None
        if self._refused or self.transport.is_closing() or self._in_head:
            return
        if self.flow.read_paused:
            # We stopped reading (the application has not taken the body yet): not the client's delay.
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_late)
            return
        self._refuse(408, f"the request body did not arrive within {self.limits.body_timeout:g} s")

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` (unless a response has begun), then close the connection."""
        self._refused = True
        self._cancel(head=True, body=True)
        log.info("refused a client request", status=status, reason=message, client=_peer(self.client))
        cycle = self.cycle
        started = cycle is not None and cycle.response_started and not cycle.response_complete
        if cycle is not None and not cycle.response_complete:
            # The application stops waiting for a body that will not come, and its answer is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        if not started and not self.transport.is_closing():
            body = (message + "\n").encode()
            head = [
                STATUS_LINE[status],
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(body)).encode() + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + body)
        self.transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else ""


def limited_protocol(limits: HttpLimits) -> type[LimitedHttpProtocol]:
    """A protocol class for uvicorn.Config(http=...) that enforces `limits`."""
    return type("SolsticeHttpProtocol", (LimitedHttpProtocol,), {"limits": limits})


class BindError(OSError):
    """The listening address cannot be used; str() is one sentence saying what to do."""


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening-ready sockets for every address `host` names, bound to `port`; raises BindError."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(
            f"cannot listen on {host}:{port}: the address does not resolve ({exc.strerror}); "
            "set --host or SOLSTICE_HOST to an address of this machine"
        ) from None
    sockets: list[socket.socket] = []
    seen: set[tuple[Any, ...]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.set_inheritable(False)
    except OSError as exc:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        raise BindError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; stop whatever uses that address "
            "or choose another with --host/--port (SOLSTICE_HOST/SOLSTICE_PORT)"
        ) from None
    return sockets
