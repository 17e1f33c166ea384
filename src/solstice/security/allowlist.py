"""PLUGIN_COMMAND_ALLOWLIST: entries that say which commands may run, each of one kind.

- a path glob (`/usr/local/plugins/*`, or `file:///opt/plugins/*`) for file:// commands;
  `*` and `?` match any characters, `/` included, so a glob covers a whole directory tree;
- `grpc://CIDR` (`grpc://10.0.0.0/8`, `grpc://fd00::/8`) for remote plugins whose every address
  lies inside it;
- `grpc://host:port` for one server, `grpc://host/*` (or `grpc://host`) for any port of a host;
  the host may be a glob (`grpc://*.plugins.svc/*`);
- `oci://registry/repo*` globs for OCI references, matched against `registry/repository` and
  `registry/repository:tag`.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from solstice.oci.reference import OciReference
from solstice.security.addresses import IPAddress, in_networks

EXAMPLES = (
    "/usr/local/plugins/*, grpc://10.0.0.0/8, grpc://plugins.prod.svc/*, oci://registry.example.com/plugins/*"
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllowlistError(ValueError):
    """An allowlist entry that is none of the accepted kinds."""


@dataclass(frozen=True)
class HostEntry:
    """grpc://host:port, grpc://host/* or grpc://host (port None: any)."""

    host: str
    port: int | None

    def matches(self, host: str, port: int) -> bool:
        """Whether this entry names `host` (glob, any case) and `port`."""
        name = host.lower().rstrip(".")
        return fnmatch.fnmatchcase(name, self.host) and self.port in (None, port)


@dataclass(frozen=True)
class Allowlist:
    """The parsed entries; `configured` is False when the variable is unset or empty."""

    paths: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()
    hosts: tuple[HostEntry, ...] = ()
    oci: tuple[str, ...] = ()
    raw: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        """True when PLUGIN_COMMAND_ALLOWLIST holds at least one entry."""
        return bool(self.raw)

    def allows_path(self, path: str) -> bool:
        """Whether a path glob covers `path`."""
        return any(fnmatch.fnmatchcase(path, glob) for glob in self.paths)

    def host_entry(self, host: str, port: int) -> HostEntry | None:
        """The grpc:// host entry naming this target, if any."""
        return next((entry for entry in self.hosts if entry.matches(host, port)), None)

    def covers_addresses(self, addresses: Sequence[IPAddress]) -> bool:
        """Whether every address lies inside the grpc:// CIDR entries."""
        return bool(addresses) and all(in_networks(a, self.networks) for a in addresses)

    def allows_oci(self, reference: OciReference) -> bool:
        """Whether an oci:// glob covers the reference's repository (with or without its tag)."""
        registry = reference.registry.lower()
        names = (f"{registry}/{reference.repository}", registry + reference.image[len(registry) :])
        return any(fnmatch.fnmatchcase(name, glob) for glob in self.oci for name in names)

    def names_registry(self, host: str) -> bool:
        """Whether an oci:// entry names this registry host (its host part, any port)."""
        name = host.lower()
        return any(fnmatch.fnmatchcase(name, host_of(glob.split("/", 1)[0])) for glob in self.oci)


def host_of(registry: str) -> str:
    """`registry[:port]` or `[v6][:port]` without the port and brackets."""
    if registry.startswith("["):
        return registry[1:].partition("]")[0]
    name, colon, port = registry.rpartition(":")
    return name if colon and (port.isdigit() or port == "*") else registry


def parse_allowlist(text: str) -> Allowlist:
    """Parse the comma-separated variable; AllowlistError names the first bad entry."""
    paths: list[str] = []
    networks: list[Network] = []
    hosts: list[HostEntry] = []
    oci: list[str] = []
    raw = [item.strip() for item in text.split(",") if item.strip()]
    for entry in raw:
        lowered = entry.lower()
        if lowered.startswith("file://"):
            paths.append(_path_glob(entry, entry[len("file://") :]))
        elif entry.startswith("/"):
            paths.append(_path_glob(entry, entry))
        elif lowered.startswith("grpc://"):
            _grpc_entry(entry, entry[len("grpc://") :], networks, hosts)
        elif lowered.startswith("oci://"):
            glob = entry[len("oci://") :]
            if not glob or "/" not in glob:
                raise AllowlistError(
                    _bad(
                        entry,
                        "an oci:// entry needs registry/repository, e.g. oci://registry.example.com/plugins/*",
                    )
                )
            registry, _, repository = glob.partition("/")
            oci.append(f"{registry.lower()}/{repository}")
        else:
            raise AllowlistError(_bad(entry, "it is not a path glob, grpc:// CIDR or host, or oci:// glob"))
    return Allowlist(tuple(paths), tuple(networks), tuple(hosts), tuple(oci), tuple(raw))


def _bad(entry: str, why: str) -> str:
    return f"PLUGIN_COMMAND_ALLOWLIST entry {entry!r} is invalid: {why}; entries look like {EXAMPLES}"


def _path_glob(entry: str, path: str) -> str:
    if not path.startswith("/"):
        raise AllowlistError(_bad(entry, "a path glob must be absolute"))
    return unquote(path)  # commands are compared decoded, so entries are too


def _grpc_entry(entry: str, rest: str, networks: list[Network], hosts: list[HostEntry]) -> None:
    target, slash, tail = rest.partition("/")
    if slash and tail and tail != "*":
        # grpc://10.0.0.0/8, grpc://fd00::/8 ... a CIDR (IPv6 ones have no brackets).
        try:
            networks.append(ipaddress.ip_network(rest, strict=False))
        except ValueError:
            raise AllowlistError(_bad(entry, f"{rest!r} is not a CIDR such as 10.0.0.0/8")) from None
        return
    if not target:
        raise AllowlistError(_bad(entry, "a grpc:// entry needs a host, CIDR or host:port"))
    host, port = _host_port(entry, target)
    # grpc://host/* means any port; grpc://host:port/* still means that port only.
    hosts.append(HostEntry(host.lower().rstrip("."), port))


def _host_port(entry: str, target: str) -> tuple[str, int | None]:
    if target.startswith("["):
        host, _, after = target[1:].partition("]")
        port_text = after.removeprefix(":")
    elif target.count(":") == 1:
        host, _, port_text = target.partition(":")
    else:
        host, port_text = target, ""
    if port_text in ("", "*"):
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise AllowlistError(_bad(entry, f"port {port_text!r} is not a number from 1 to 65535"))
    return host, int(port_text)
