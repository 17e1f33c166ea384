"""Parses a plugin's command URL into a typed value. No I/O happens here."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import unquote

from solstice.oci.errors import InvalidReferenceError
from solstice.oci.reference import OciReference, parse_reference

MAX_COMMAND_LENGTH = 2048


class CommandError(ValueError):
    """A command that cannot be used, with a message that says how to write it."""


@dataclass(frozen=True)
class FileCommand:
    """A local executable the host starts: file:///absolute/path."""

    path: str

    def __str__(self) -> str:
        return f"file://{self.path}"


@dataclass(frozen=True)
class GrpcCommand:
    """A plugin already serving gRPC: grpc://host:port."""

    host: str
    port: int

    @property
    def target(self) -> str:
        """The gRPC dial target."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"grpc://{self.target}"


@dataclass(frozen=True)
class OciCommand:
    """An executable pulled from an OCI registry: oci://registry/repo[:tag|@digest][?options]."""

    reference: OciReference

    def __str__(self) -> str:
        return str(self.reference)


Command = FileCommand | GrpcCommand | OciCommand


def parse_command(raw: str) -> Command:
    """Parse a command URL, raising CommandError that names the bad value and the fix."""
    if len(raw) > MAX_COMMAND_LENGTH:
        raise CommandError(f"command is {len(raw)} characters long; the limit is {MAX_COMMAND_LENGTH}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise CommandError(f"command {raw!r} contains control characters; remove them")
    scheme, sep, rest = raw.partition("://")
    if not sep:
        if raw.startswith("/"):
            raise CommandError(f"command {raw!r} has no scheme; write it as file://{raw}")
        raise CommandError(
            f"command {raw!r} is not a URL; use file:///abs/path, grpc://host:port or oci://registry/repo:tag"
        )
    scheme = scheme.lower()
    if scheme == "file":
        return _parse_file(raw, rest)
    if scheme == "grpc":
        return _parse_grpc(raw, rest)
    if scheme == "oci":
        if not rest:
            raise CommandError(f"command {raw!r} names no image; write oci://registry/repo:tag")
        try:
            return OciCommand(parse_reference(rest))
        except InvalidReferenceError as exc:
            raise CommandError(str(exc)) from None
    raise CommandError(f"unknown command scheme {scheme!r} in {raw!r}; use file://, grpc:// or oci://")


def _parse_file(raw: str, rest: str) -> FileCommand:
    if not rest.startswith("/"):
        name = rest.removeprefix("./") or "my-plugin"
        raise CommandError(
            f"file:// commands need an absolute path, got {raw!r}; "
            f"write it as file:///usr/local/bin/{name.rsplit('/', 1)[-1]}"
        )
    path = unquote(rest)
    if "\x00" in path:
        raise CommandError(f"command {raw!r} contains a NUL byte; remove it")
    normal = "/" + posixpath.normpath(path).lstrip("/")
    if normal != path.rstrip("/") or path.startswith("//"):
        raise CommandError(
            f"path in {raw!r} has '.' or '..' segments or repeated slashes; write file://{normal}"
        )
    return FileCommand(path)


def _parse_grpc(raw: str, rest: str) -> GrpcCommand:
    hostport = rest.rstrip("/")
    if "/" in hostport or "?" in hostport or "#" in hostport:
        raise CommandError(f"grpc:// command {raw!r} must be grpc://host:port with nothing after the port")
    if "@" in hostport:
        raise CommandError("grpc:// commands must not carry credentials; remove the user:password@ part")
    if hostport.startswith("["):
        host, _, port_text = hostport[1:].partition("]:")
    else:
        host, _, port_text = hostport.rpartition(":")
    if not host or not port_text:
        raise CommandError(
            f"grpc:// command {raw!r} needs a host and a port, as in grpc://plugin-server:50051"
        )
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise CommandError(f"port {port_text!r} in {raw!r} is not a number from 1 to 65535")
    return GrpcCommand(host=host, port=int(port_text))
