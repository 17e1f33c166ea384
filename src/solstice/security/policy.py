"""The command security policy: which plugin commands may run, and what is worth a warning.

The API checks a command when a plugin is created or changed (stage "api": nothing needs to
exist yet); the host checks it again before every start or connect (stage "load": the file is
resolved through its symlinks and inspected, host names are resolved again), so a changed
policy or DNS answer is enforced. A grpc:// plugin is dialled at the addresses that were checked.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from solstice.commands import CommandError, FileCommand, GrpcCommand, OciCommand, parse_command
from solstice.security.addresses import IPAddress, internal_reason_for, is_localhost, parse_ip_literal
from solstice.security.allowlist import Allowlist, AllowlistError, host_of, parse_allowlist
from solstice.security.paths import UnsafePathError, check_plugin_file, open_checked
from solstice.security.resolve import ResolveError, Resolver, SystemResolver
from solstice.settings import Settings

Stage = Literal["api", "load"]

STANDARD_DIRS = ("/usr/local/bin", "/usr/bin", "/opt/plugins", "/plugins", "/usr/local/plugins")
PATH_WARNING = "⚠️  PLUGIN SECURITY WARNING: Plugin command uses absolute path outside standard directories."
INTERNAL_WARNING = "⚠️  PLUGIN SECURITY WARNING: Plugin command targets internal network address"


class PolicyError(ValueError):
    """A command the policy refuses; the message says why and what to do."""


@dataclass(frozen=True)
class Verdict:
    """A command the policy accepts, with its warnings and what to run or dial."""

    warnings: tuple[str, ...] = ()
    # file://: the path after symlinks (stage "load"); the file that is started.
    path: str | None = None
    # grpc://: the checked addresses as a gRPC target, and the authority to send.
    dial: str | None = None
    authority: str | None = None


@dataclass(frozen=True)
class _Checked:
    addresses: list[IPAddress]
    warnings: list[str] = field(default_factory=list)


class Policy:
    """The rules, from settings; `check` answers a Verdict or raises PolicyError."""

    def __init__(
        self,
        allowlist: Allowlist,
        *,
        allow_internal: bool = False,
        block_internal_urls: bool = False,
        standard_dirs: Sequence[str] = STANDARD_DIRS,
        resolver: Resolver | None = None,
    ) -> None:
        self.allowlist = allowlist
        self.allow_internal = allow_internal
        self.block_internal_urls = block_internal_urls
        # Absolute and resolved, as the paths they are compared with at load are.
        self.standard_dirs = tuple(os.path.realpath(d).rstrip("/") for d in standard_dirs)
        self.resolver = resolver or SystemResolver()

    @classmethod
    def from_settings(
        cls, settings: Settings, extra_dirs: Sequence[Path] = (), resolver: Resolver | None = None
    ) -> Policy:
        """The policy the settings describe; `extra_dirs` (the OCI cache) count as standard."""
        try:
            allowlist = parse_allowlist(settings.plugin_command_allowlist)
        except AllowlistError as exc:
            raise PolicyError(str(exc)) from None
        return cls(
            allowlist,
            allow_internal=settings.allow_internal_network_access,
            block_internal_urls=settings.plugin_block_internal_urls,
            standard_dirs=(*STANDARD_DIRS, *(str(d) for d in extra_dirs)),
            resolver=resolver,
        )

    async def check(self, raw: str, stage: Stage) -> Verdict:
        """Apply every rule to a command; PolicyError says which one refused it."""
        try:
            command = parse_command(raw)
        except CommandError as exc:
            raise PolicyError(str(exc)) from None
        if isinstance(command, FileCommand):
            return self._check_file(command, stage)
        if isinstance(command, GrpcCommand):
            return await self._check_grpc(command, stage)
        return await self._check_oci(command, stage)

    # -- file:// -------------------------------------------------------------------------------

    def _check_file(self, command: FileCommand, stage: Stage) -> Verdict:
        path = command.path
        if stage == "load":
            # A ConfigMap mount is a chain of symlinks: the rules apply to where it ends.
            path = _resolve_checked(command.path)
        if self.allowlist.configured and not self.allowlist.allows_path(path):
            shown = path if path == command.path else f"{command.path} (resolved to {path})"
            raise PolicyError(
                f"file:// path {shown} matches no path glob in PLUGIN_COMMAND_ALLOWLIST "
                f"({_listed(self.allowlist.paths)}); add a glob such as {Path(command.path).parent}/* "
                "or move the plugin"
            )
        warnings = () if self._standard(path) else (PATH_WARNING,)
        return Verdict(warnings=warnings, path=path)

    def _standard(self, path: str) -> bool:
        return any(path.startswith(d + "/") for d in self.standard_dirs)

    # -- grpc:// -------------------------------------------------------------------------------

    async def _check_grpc(self, command: GrpcCommand, stage: Stage) -> Verdict:
        host, port = command.host, command.port
        entry = self.allowlist.host_entry(host, port) if self.allowlist.configured else None
        try:
            addresses = await self._addresses(host)
        except ResolveError as exc:
            if stage == "load":
                raise PolicyError(f"{command} cannot be checked: {exc}; fix the host name or DNS") from None
            if self.allowlist.configured and entry is None:
                raise PolicyError(_not_listed(str(command), self.allowlist)) from None
            # A Service may be created after the plugin: the host checks again at each connect.
            warning = f"{command}: {exc}; accepted for now and checked again before each connect"
            return Verdict(warnings=(warning,))
        listed_by_network = self.allowlist.configured and self.allowlist.covers_addresses(addresses)
        if self.allowlist.configured and entry is None and not listed_by_network:
            raise PolicyError(_not_listed(str(command), self.allowlist))
        # An allowlist entry naming this host or its network permits it even when internal.
        checked = self._internal(
            str(command), host, addresses, permitted=entry is not None or listed_by_network
        )
        return Verdict(
            warnings=tuple(checked.warnings),
            dial=_grpc_target(addresses, port),
            authority=command.target,
        )

    async def _addresses(self, host: str) -> list[IPAddress]:
        literal = parse_ip_literal(host)
        if literal is not None:
            return [literal]
        if is_localhost(host):
            # RFC 6761: localhost names are loopback whatever a resolver answers.
            return [ipaddress.IPv4Address("127.0.0.1")]
        return await self.resolver.resolve(host)

    def _internal(self, what: str, host: str, addresses: list[IPAddress], permitted: bool) -> _Checked:
        found = [(a, reason) for a in addresses if (reason := internal_reason_for(host, a))]
        if not found or permitted:
            return _Checked(addresses)
        if self.allow_internal:
            return _Checked(addresses, [INTERNAL_WARNING])
        address, reason = found[0]
        resolved = "" if parse_ip_literal(host) else f" ({host} resolves to {address})"
        raise PolicyError(
            f"{what} targets an internal network address{resolved}: {reason}; set "
            "ALLOW_INTERNAL_NETWORK_ACCESS=true (development) or list it in PLUGIN_COMMAND_ALLOWLIST"
        )

    # -- oci:// --------------------------------------------------------------------------------

    async def _check_oci(self, command: OciCommand, stage: Stage) -> Verdict:
        reference = command.reference
        if self.allowlist.configured and not self.allowlist.allows_oci(reference):
            raise PolicyError(_not_listed(str(command), self.allowlist))
        if not self.block_internal_urls:
            return Verdict()
        try:
            await self.check_url_host(host_of(reference.registry))
        except ResolveError as exc:
            if stage == "load":
                raise PolicyError(f"{command} cannot be checked: {exc}; fix the host name or DNS") from None
            warning = f"{command}: {exc}; accepted for now and checked again before each pull"
            return Verdict(warnings=(warning,))
        return Verdict()

    async def check_url_host(self, host: str) -> list[IPAddress]:
        """The addresses the OCI client may connect to for `host`; with PLUGIN_BLOCK_INTERNAL_URLS,
        a registry, token or blob host on an internal network is refused (unless an oci://
        allowlist entry names it). ResolveError when the name does not resolve.
        """
        addresses = await self._addresses(host)
        if not self.block_internal_urls or self.allowlist.names_registry(host):
            return addresses
        for address in addresses:
            reason = internal_reason_for(host, address)
            if reason:
                resolved = "" if parse_ip_literal(host) else f" (resolves to {address})"
                raise PolicyError(
                    f"the OCI client was sent to {host}{resolved}, an internal network address "
                    f"({reason}), and "
                    "PLUGIN_BLOCK_INTERNAL_URLS=true refuses it; list the registry in "
                    "PLUGIN_COMMAND_ALLOWLIST (oci://HOST/*) if it is trusted"
                )
        return addresses


def _grpc_target(addresses: list[IPAddress], port: int) -> str:
    """A gRPC target that dials exactly the checked addresses, of the family answered first."""
    family = addresses[0].version
    chosen = [a for a in addresses if a.version == family]
    if family == 4:
        return "ipv4:" + ",".join(f"{a}:{port}" for a in chosen)
    # gRPC percent-decodes the target: a zone's `%` is written as %25.
    return "ipv6:" + ",".join(f"[{str(a).replace('%', '%25')}]:{port}" for a in chosen)


def _resolve_checked(given: str) -> str:
    """Where a file:// path leads, once no other user can replace the file or a directory on
    the way; a path that cannot be walked is left to the launcher, which says why."""
    try:
        with open_checked(given) as checked:
            check_plugin_file(checked, given)
            return checked.path
    except UnsafePathError as exc:
        raise PolicyError(str(exc)) from None
    except OSError:
        try:
            return os.path.realpath(given)
        except (OSError, ValueError):
            return given


def _listed(entries: Sequence[str]) -> str:
    return ", ".join(entries) or "none of this kind"


def _not_listed(command: str, allowlist: Allowlist) -> str:
    return (
        f"{command} matches no entry of PLUGIN_COMMAND_ALLOWLIST ({', '.join(allowlist.raw)}); "
        "add an entry for it or use an allowed command"
    )
