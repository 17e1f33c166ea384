"""The policy for LLM upstream URLs: no credentials in the URL, no internal addresses unless allowed.

An upstream receives the LLM's API key and the users' traffic, so an `upstream_url` pointing at
cloud metadata (169.254.169.254) or a private service is refused like a grpc:// plugin there:
`ALLOW_INTERNAL_NETWORK_ACCESS=true` accepts internal upstreams with a warning, and
SOLSTICE_UPSTREAM_INTERNAL_ALLOWLIST names the ones permitted without it (a local model server).
The URL is checked at the API and again at every connection, against the DNS answers the
gateway then dials (see UpstreamResolver), so a changed DNS answer cannot point it inside.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from solstice.security.addresses import (
    IPAddress,
    IPNetwork,
    in_networks,
    internal_reason_for,
    is_localhost,
    parse_ip_literal,
)
from solstice.security.resolve import ResolveError, Resolver, SystemResolver
from solstice.settings import Settings

Stage = Literal["api", "request"]
DEFAULT_PORTS = {"http": 80, "https": 443}
INTERNAL_WARNING = "⚠️  SECURITY WARNING: LLM upstream_url targets internal network address"
ALLOWLIST_VARIABLE = "SOLSTICE_UPSTREAM_INTERNAL_ALLOWLIST"


class UpstreamRefused(ValueError):
    """An upstream URL the policy refuses; the message says why and what to do."""


class UpstreamAllowlistError(ValueError):
    """An entry of SOLSTICE_UPSTREAM_INTERNAL_ALLOWLIST that is not a host, host:port or CIDR."""


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port of an upstream URL: where its key is sent."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def split_upstream_url(url: str) -> SplitResult:
    """The parts of an upstream URL; UpstreamRefused for credentials, another scheme or no host.

    Credentials are looked for first, so no message ever echoes them.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UpstreamRefused(
            "upstream_url is not a valid URL; write it as https://host[:port]/path"
        ) from None
    if "@" in parts.netloc:
        raise UpstreamRefused(
            "upstream_url must not carry credentials; remove the user:password@ part and put the "
            "credential in api_key"
        )
    if parts.scheme.lower() not in DEFAULT_PORTS:
        raise UpstreamRefused(f"upstream_url {url!r} must start with http:// or https://")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number from 0 to 65535
    except ValueError:
        raise UpstreamRefused(
            f"upstream_url {url!r} has an invalid port; use a number from 1 to 65535"
        ) from None
    if not parts.hostname:
        raise UpstreamRefused(f"upstream_url {url!r} has no host; write it as https://host[:port]/path")
    return parts


def origin_of(url: str) -> Origin | None:
    """The origin of an upstream URL (None for "" or a URL that cannot be parsed)."""
    try:
        parts = split_upstream_url(url)
    except UpstreamRefused:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    return Origin(scheme, host, parts.port or DEFAULT_PORTS[scheme])


def strip_credentials(url: str) -> str:
    """`url` without a user:password@ part (for rows stored before credentials were refused)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


@dataclass(frozen=True)
class HostEntry:
    """An allowlist entry naming a host (glob, any case), on one port or any (None)."""

    host: str
    port: int | None

    def matches(self, host: str, port: int) -> bool:
        """Whether this entry names `host` on `port`."""
        return fnmatch.fnmatchcase(host.lower().rstrip("."), self.host) and self.port in (None, port)


@dataclass(frozen=True)
class UpstreamAllowlist:
    """The internal upstreams permitted without ALLOW_INTERNAL_NETWORK_ACCESS."""

    hosts: tuple[HostEntry, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    raw: tuple[str, ...] = ()

    def permits(self, host: str, port: int, addresses: list[IPAddress]) -> bool:
        """Whether an entry names the host, or every address lies inside the CIDR entries."""
        if any(entry.matches(host, port) for entry in self.hosts):
            return True
        return bool(addresses) and all(in_networks(a, self.networks) for a in addresses)


def parse_upstream_allowlist(value: str) -> UpstreamAllowlist:
    """Parse comma-separated `host`, `host:port`, `[v6]:port`, IP or CIDR entries."""
    hosts: list[HostEntry] = []
    networks: list[IPNetwork] = []
    raw = tuple(entry.strip() for entry in value.split(",") if entry.strip())
    for entry in raw:
        if "/" in entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise UpstreamAllowlistError(_bad_entry(entry)) from None
            continue
        host, port = _host_port(entry)
        literal = parse_ip_literal(host)
        if literal is not None and port is None:
            networks.append(ipaddress.ip_network(literal))
        elif host and all(c.isalnum() or c in "-._*?:" for c in host):
            hosts.append(HostEntry(host.lower().rstrip("."), port))
        else:
            raise UpstreamAllowlistError(_bad_entry(entry))
    return UpstreamAllowlist(tuple(hosts), tuple(networks), raw)


def _host_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    if not port:
        return host, None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UpstreamAllowlistError(_bad_entry(entry))
    return host, int(port)


def _bad_entry(entry: str) -> str:
    return (
        f"{ALLOWLIST_VARIABLE} entry {entry!r} is invalid: it is not a host, host:port, IP address or "
        "CIDR; entries look like 127.0.0.1:8400, llm.internal, 10.0.0.0/8"
    )


@dataclass(frozen=True)
class UpstreamVerdict:
    """An accepted upstream: its checked addresses (empty when unresolved at the API), warnings."""

    addresses: list[IPAddress] = field(default_factory=list)
    warnings: tuple[str, ...] = ()


class UpstreamPolicy:
    """The internal-address rules applied to upstream URLs, from settings."""

    def __init__(
        self,
        allowlist: UpstreamAllowlist,
        *,
        allow_internal: bool = False,
        block_internal_urls: bool = False,
        resolver: Resolver | None = None,
    ) -> None:
        self.allowlist = allowlist
        self.allow_internal = allow_internal
        self.block_internal_urls = block_internal_urls
        self.resolver = resolver or SystemResolver()

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver | None = None) -> UpstreamPolicy:
        """The policy the settings describe; UpstreamAllowlistError for a bad allowlist entry."""
        return cls(
            parse_upstream_allowlist(settings.upstream_internal_allowlist),
            allow_internal=settings.allow_internal_network_access,
            block_internal_urls=settings.plugin_block_internal_urls,
            resolver=resolver,
        )

    async def check_url(self, url: str, stage: Stage = "api") -> UpstreamVerdict:
        """Check an upstream URL; UpstreamRefused says which rule refused it.

        At the API a host that does not resolve is accepted with a warning (it is checked again
        at each connection).
        """
        parts = split_upstream_url(url)
        shown = parts._replace(query="", fragment="").geturl()
        origin = origin_of(url)
        assert origin is not None
        try:
            return await self.check_host(origin.host, origin.port, shown)
        except ResolveError as exc:
            if stage == "request":
                raise UpstreamRefused(f"upstream_url {shown} cannot be checked: {exc}") from None
            return UpstreamVerdict(warnings=(f"upstream_url {shown}: {exc}; checked again at each request",))

    async def check_host(self, host: str, port: int, shown: str | None = None) -> UpstreamVerdict:
        """The addresses the gateway may connect to for `host`; UpstreamRefused, ResolveError."""
        what = shown or f"upstream {host}:{port}"
        addresses = await self._addresses(host)
        found = [(a, reason) for a in addresses if (reason := internal_reason_for(host, a))]
        if not found or self.allowlist.permits(host, port, addresses):
            return UpstreamVerdict(addresses)
        if self.allow_internal and not self.block_internal_urls:
            return UpstreamVerdict(addresses, (INTERNAL_WARNING,))
        address, reason = found[0]
        resolved = "" if parse_ip_literal(host) else f" ({host} resolves to {address})"
        lift = (
            "PLUGIN_BLOCK_INTERNAL_URLS=true refuses it even with ALLOW_INTERNAL_NETWORK_ACCESS; list it"
            if self.allow_internal
            else "set ALLOW_INTERNAL_NETWORK_ACCESS=true (development) or list it"
        )
        raise UpstreamRefused(
            f"upstream_url {what} targets an internal network address{resolved}: {reason}; "
            f"{lift} in {ALLOWLIST_VARIABLE} (for example {_entry_for(host, port)})"
        )

    async def _addresses(self, host: str) -> list[IPAddress]:
        literal = parse_ip_literal(host)
        if literal is not None:
            return [literal]
        if is_localhost(host):
            return [ipaddress.IPv4Address("127.0.0.1")]
        return await self.resolver.resolve(host)


def _entry_for(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class UpstreamResolver(AbstractResolver):
    """aiohttp's resolver for upstreams: every answer checked, and only checked addresses dialled.

    aiohttp passes IP literals by without a resolver, so the gateway checks those itself.
    """

    def __init__(self, policy: UpstreamPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The checked addresses of `host`; UpstreamRefused, or OSError when it does not resolve."""
        try:
            verdict = await self.policy.check_host(host, port)
        except ResolveError as exc:
            raise OSError(str(exc)) from None
        return [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in verdict.addresses
        ]

    async def close(self) -> None:
        """Nothing to release."""
