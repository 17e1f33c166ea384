"""TCP connections for the OCI client that go only to addresses a checker approved.

httpx would resolve a host name again after any check of ours, which a DNS answer that changes in
between (rebinding) could exploit. This network backend resolves once, checks every address, and
connects to those addresses; TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import httpcore

from solstice.oci.errors import OciDisabledError

# Resolves a host name once and returns the addresses the client may connect to; raises an
# OciError (OciDisabledError when refused, RegistryError when the name does not resolve).
AddressCheck = Callable[[str], Awaitable[Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address]]]


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's default backend, connecting to the checked addresses of each host."""

    def __init__(self, check: AddressCheck) -> None:
        self._check = check
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first checked address of `host` that answers."""
        addresses = await self._check(host)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )  # fmt: skip
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        """Not used by the OCI client: registries are reached over TCP."""
        raise OciDisabledError("the OCI client does not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        """As the default backend."""
        await self._inner.sleep(seconds)
