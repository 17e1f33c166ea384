"""TCP connections for the OCI client that go only to addresses the security policy checked.

httpx would resolve a host name again after any check of ours, which a DNS answer that changes in
between (rebinding) could exploit. This network backend resolves once, checks every address, and
connects to those addresses; TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore

from solstice.oci.errors import OciDisabledError, RegistryError
from solstice.security.policy import Policy, PolicyError
from solstice.security.resolve import ResolveError


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's default backend, connecting to the policy-checked addresses of each host."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
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
        try:
            addresses = await self.policy.check_url_host(host)
        except PolicyError as exc:
            raise OciDisabledError(str(exc)) from None
        except ResolveError as exc:
            raise RegistryError(f"registry host {exc}", retryable=True) from None
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
