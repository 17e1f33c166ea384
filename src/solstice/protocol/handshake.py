"""The go-plugin handshake: constants both sides agree on and the line the plugin prints.

A launched plugin prints exactly one line on stdout before anything else:
``CORE|APP|NETWORK|ADDR|PROTOCOL[|SERVER_CERT[|MULTIPLEX]]``. The host serves nothing
before reading it.
"""

from __future__ import annotations

from dataclasses import dataclass

CORE_PROTOCOL_VERSION = 1
APP_PROTOCOL_VERSION = 1

# go-plugin's magic cookie: a UX check that tells a binary it was started by a host,
# not a secret. Go plugins must use the same key and value in their HandshakeConfig.
MAGIC_COOKIE_KEY = "SOLSTICE_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "d6f3a1c08e5b4f27"

ENV_PROTOCOL_VERSIONS = "PLUGIN_PROTOCOL_VERSIONS"
ENV_MIN_PORT = "PLUGIN_MIN_PORT"
ENV_MAX_PORT = "PLUGIN_MAX_PORT"
ENV_UNIX_SOCKET_DIR = "PLUGIN_UNIX_SOCKET_DIR"

# grpc.health.v1 service name go-plugin hosts check.
HEALTH_SERVICE = "plugin"
PROTOCOL_GRPC = "grpc"
# gRPC status a plugin answers a hook with before it received Configure; the host then
# configures it and retries once (a grpc:// plugin may restart behind the same address).
NOT_CONFIGURED = "FAILED_PRECONDITION"
NETWORKS = ("unix", "tcp")
# gRPC metadata key of the host's RPCs to a plugin: the token of the host's service channel
# (HostHello.link), so the plugin's calls made while serving an RPC go back to that host.
LINK_METADATA = "solstice-link"

# go-plugin only treats field 6 as a certificate when it is longer than this.
_MIN_CERT_LENGTH = 50


class HandshakeError(ValueError):
    """The handshake line could not be accepted."""


@dataclass(frozen=True)
class HandshakeLine:
    """One parsed handshake line."""

    network: str
    address: str
    app_version: int = APP_PROTOCOL_VERSION
    core_version: int = CORE_PROTOCOL_VERSION
    protocol: str = PROTOCOL_GRPC
    server_cert: str = ""
    multiplex: bool = False

    def format(self) -> str:
        """Render the line a plugin prints (without the newline); field 6 is always present."""
        fields = [
            str(self.core_version),
            str(self.app_version),
            self.network,
            self.address,
            self.protocol,
            self.server_cert,
        ]
        if self.multiplex:
            fields.append("true")
        return "|".join(fields)

    @property
    def target(self) -> str:
        """The gRPC target string for this address."""
        return f"unix:{self.address}" if self.network == "unix" else self.address

    @classmethod
    def parse(cls, line: str, accepted_versions: tuple[int, ...] = (APP_PROTOCOL_VERSION,)) -> HandshakeLine:
        """Parse and validate a handshake line, raising HandshakeError with a reason."""
        text = line.strip()
        parts = text.split("|")
        if len(parts) < 4:
            raise HandshakeError(
                f"unrecognized handshake line {text[:200]!r}: a plugin must print "
                "'CORE|APP|NETWORK|ADDR|grpc' as its first line of output"
            )
        core, app, network, address = parts[:4]
        if core != str(CORE_PROTOCOL_VERSION):
            raise HandshakeError(
                f"unsupported go-plugin core protocol version {core!r}; "
                f"Solstice speaks version {CORE_PROTOCOL_VERSION}"
            )
        try:
            app_version = int(app)
        except ValueError:
            raise HandshakeError(f"invalid plugin protocol version {app!r} in handshake") from None
        if app_version not in accepted_versions:
            wanted = ", ".join(str(v) for v in accepted_versions)
            raise HandshakeError(
                f"plugin speaks protocol version {app_version}, but this host accepts {wanted}; "
                "rebuild the plugin against a matching Solstice SDK"
            )
        if network not in NETWORKS:
            raise HandshakeError(f"unsupported network {network!r} in handshake; expected unix or tcp")
        if not address:
            raise HandshakeError("empty address in handshake line")
        protocol = parts[4] if len(parts) > 4 and parts[4] else "netrpc"
        if protocol != PROTOCOL_GRPC:
            raise HandshakeError(
                f"plugin speaks {protocol!r}, but Solstice only talks grpc; "
                "serve the plugin with go-plugin's GRPCServer"
            )
        cert = parts[5] if len(parts) > 5 and len(parts[5]) > _MIN_CERT_LENGTH else ""
        multiplex = len(parts) > 6 and parts[6] == "true"
        return cls(
            network=network,
            address=address,
            app_version=app_version,
            core_version=int(core),
            protocol=protocol,
            server_cert=cert,
            multiplex=multiplex,
        )
