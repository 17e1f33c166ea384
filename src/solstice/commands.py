"""Parses a plugin's command URL into a typed value. No I/O happens here."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

from solstice.oci.errors import InvalidReferenceError
from solstice.oci.reference import OciReference, parse_reference

MAX_COMMAND_LENGTH = 2048
_NAME_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
# An IPv6 literal, optionally with a zone made of interface-name characters.
_IPV6_HOST = re.compile(r"[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?")


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


def redact(raw: str) -> str:
    """The command as error messages may show it: any user:password@ part and query hidden."""
    scheme, sep, rest = raw.partition("://")
    if not sep:
        return raw
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    path, question, _query = path.partition("?")
    return f"{scheme}{sep}{authority}{slash}{path}" + ("?…" if question else "")


def _has_control(text: str) -> bool:
    # C0/C1 controls, DEL and the Unicode line and paragraph separators: none belong in a command.
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text)


def parse_command(raw: str) -> Command:
    """Parse a command URL, raising CommandError that names the bad value and the fix."""
    if len(raw) > MAX_COMMAND_LENGTH:
        raise CommandError(f"command is {len(raw)} characters long; the limit is {MAX_COMMAND_LENGTH}")
    if _has_control(raw):
        raise CommandError(f"command {redact(raw)!r} contains control characters; remove them")
    scheme, sep, rest = raw.partition("://")
    if sep and "@" in rest.partition("/")[0]:
        # Checked first, so no other message ever echoes the secret.
        raise CommandError(
            f"{scheme.lower()}:// commands must not carry credentials; remove the user:password@ part"
            + (" and set OCI_PLUGINS_REGISTRY_<HOST>_* variables instead" if scheme.lower() == "oci" else "")
        )
    raw = redact(raw)
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
    try:
        path = unquote(rest, errors="strict")
    except UnicodeDecodeError:
        raise CommandError(f"path in {raw!r} has percent-escapes that are not UTF-8; fix them") from None
    if "\x00" in path:
        raise CommandError(f"command {raw!r} contains a NUL byte; remove it")
    if _has_control(path):
        raise CommandError(f"path in {raw!r} contains control characters once decoded; remove them")
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
    bracketed = hostport.startswith("[")
    if not (_IPV6_HOST if bracketed else _NAME_HOST).fullmatch(host):
        # Anything else could smuggle extra addresses or a zone into the gRPC dial target.
        raise CommandError(
            f"host {host!r} in {raw!r} is not a host name, IPv4 address or [IPv6] address; "
            "use letters, digits, '.', '-' and '_'"
        )
    return GrpcCommand(host=host, port=int(port_text))
