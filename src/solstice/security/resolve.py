"""Name resolution for the policy: every A and AAAA answer, through the system resolver."""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol

from solstice.security.addresses import IPAddress, parse_ip_literal


class ResolveError(Exception):
    """A host name that does not resolve."""


class Resolver(Protocol):
    """What the policy asks of a resolver (tests use a fake one)."""

    async def resolve(self, host: str) -> list[IPAddress]:
        """Every address `host` has, in the resolver's order; ResolveError when it has none."""
        ...


class SystemResolver:
    """getaddrinfo, as the gRPC and HTTP clients would use it, bounded in time."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    async def resolve(self, host: str) -> list[IPAddress]:
        """Every address `host` has, in the resolver's order; ResolveError when it has none."""
        literal = parse_ip_literal(host)
        if literal is not None:
            return [literal]
        try:
            async with asyncio.timeout(self.timeout):
                answers = await asyncio.get_running_loop().getaddrinfo(
                    host, None, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                )
        except TimeoutError:
            raise ResolveError(f"{host} did not resolve within {self.timeout:.0f} s") from None
        except (socket.gaierror, UnicodeError) as exc:
            raise ResolveError(f"{host} does not resolve ({exc})") from None
        found: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in answers:
            address = parse_ip_literal(str(sockaddr[0]))
            if address is not None and address not in found:
                found.append(address)
        if not found:
            raise ResolveError(f"{host} has no addresses")
        return found
