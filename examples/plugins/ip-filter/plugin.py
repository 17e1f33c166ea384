#!/usr/bin/env python3
"""pre_auth plugin: blocks clients whose address is in (or outside) configured CIDR lists.

Config: {"deny": ["203.0.113.0/24"], "allow": ["10.0.0.0/8"]}
A client in `deny` is blocked; when `allow` is non-empty, a client outside it is blocked too.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from solstice.sdk import Plugin, block, pb, proceed, serve

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(config: dict[str, Any], key: str) -> list[Network]:
    values = config.get(key, [])
    if not isinstance(values, list):
        raise ValueError(f"{key} must be a list of CIDR strings")
    try:
        return [ipaddress.ip_network(str(v), strict=False) for v in values]
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


def _client_ip(remote_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    host = remote_addr
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class IpFilter(Plugin):
    name = "ip-filter"
    version = "1.0.0"
    description = "Blocks requests by client address, from CIDR allow and deny lists."
    config_schema = {
        "type": "object",
        "properties": {
            "allow": {"type": "array", "items": {"type": "string"}},
            "deny": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    }

    def __init__(self) -> None:
        self.allow: list[Network] = []
        self.deny: list[Network] = []

    def configure(self, config: dict[str, Any]) -> None:
        self.allow = _networks(config, "allow")
        self.deny = _networks(config, "deny")

    def _refuse(self, reason: str) -> pb.HookResponse:
        body = json.dumps({"error": {"message": reason, "type": "forbidden"}})
        return block(403, body, {"Content-Type": "application/json"})

    async def pre_auth(self, ctx: pb.RequestContext, request: pb.HttpRequest) -> pb.HookResponse:
        ip = _client_ip(request.remote_addr)
        if ip is None:
            return self._refuse(f"client address {request.remote_addr!r} is not an IP address")
        if any(ip in net for net in self.deny):
            return self._refuse(f"client address {ip} is denied")
        if self.allow and not any(ip in net for net in self.allow):
            return self._refuse(f"client address {ip} is not in the allow list")
        return proceed()


if __name__ == "__main__":
    serve(IpFilter())
