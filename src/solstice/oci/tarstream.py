"""A streaming reader of (gzip, zstd or plain) tar layers whose cost is bounded.

Python's tarfile reads a pax or GNU long-name header whole into memory, whatever size it
declares, and cannot be stopped. This reader refuses such headers over MAX_HEADER_BYTES before
reading them, counts every decompressed byte against a Budget and checks the Budget's stop flag
on every chunk, so an extraction ends within one chunk when its pull is cancelled.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO, Protocol

import zstandard

from solstice.oci.errors import ContentError

BLOCK = 512
CHUNK = 1 << 20
# The pax records or GNU long names of one member, in all (Go's archive/tar allows the same).
MAX_HEADER_BYTES = 1 << 20
DECOMPRESSED_SETTING = "OCI_PLUGINS_MAX_DECOMPRESSED_BYTES"

_REGULAR = (b"0", b"\0", b"7")
_KINDS = {b"1": "hardlink", b"2": "symlink", b"3": "device", b"4": "device", b"5": "directory", b"6": "fifo"}
_META = (b"x", b"X", b"g", b"L", b"K")  # pax local (X: Solaris), pax global, GNU long name/link


class Cancelled(Exception):
    """The pull this extraction belongs to was cancelled; the extraction stopped."""


class Budget:
    """The decompressed bytes one extraction may read, and the flag that stops it."""

    def __init__(self, limit: int, stop: threading.Event | None = None) -> None:
        self.limit = limit
        self.used = 0
        self.stop = stop or threading.Event()

    def check(self) -> None:
        """Raise Cancelled once the stop flag is set."""
        if self.stop.is_set():
            raise Cancelled()

    def take(self, size: int, where: str) -> None:
        """Count `size` more bytes; over the limit is a ContentError naming it and its setting."""
        self.used += size
        if self.used > self.limit:
            raise ContentError(
                f"the layers of {where} decompress to more than {self.limit} bytes, the limit of "
                f"{DECOMPRESSED_SETTING}; the pull was stopped (raise it if this image is expected)"
            )


@dataclass(frozen=True)
class Member:
    """One tar member's header, with pax and GNU long names applied."""

    name: str
    kind: str  # "file", "directory", "symlink", "hardlink", "device", "fifo", "sparse file", "special file"
    size: int
    linkname: str = ""


class TarStream:
    """Members of one layer, read once in order; `copy_to` reads the current member's data."""

    def __init__(self, raw: BinaryIO, compression: str | None, budget: Budget, where: str, name: str) -> None:
        self._source = _decompressed(raw, compression)
        self._budget = budget
        self._where = where
        self._name = name
        self._left = 0  # data bytes of the current member not read yet
        self._padding = 0

    def __iter__(self) -> Iterator[Member]:
        first = True
        while True:
            self._skip(self._left)
            self._skip(self._padding, padding=True)
            self._left = self._padding = 0
            member = self._next_member(first)
            if member is None:
                return
            first = False
            data = member.size if member.kind in ("file", "sparse file", "special file") else 0
            self._left, self._padding = data, -data % BLOCK
            yield member

    def copy_to(self, out: IO[bytes]) -> None:
        """Write the rest of the current member's data to `out`."""
        while self._left:
            chunk = self._read(min(CHUNK, self._left))
            if not chunk:
                raise self._broken("it ends inside a file")
            self._left -= len(chunk)
            out.write(chunk)

    # -- headers -------------------------------------------------------------------------------

    def _next_member(self, first: bool) -> Member | None:
        pax: dict[str, str] = {}
        long_name = long_link = None
        meta_bytes = 0
        while True:
            block = self._read_exact(BLOCK, at_header=True)
            if not block:
                if first:
                    raise self._broken("it is empty")
                return None  # no end-of-archive blocks: tolerated at a member boundary, as Go does
            if block == bytes(BLOCK):
                return None
            kind, size, name, linkname = self._header(block)
            if kind in _META:
                meta_bytes += size
                if meta_bytes > MAX_HEADER_BYTES:
                    raise ContentError(
                        f"layer {self._name} of {self._where} has a pax or GNU long-name header of "
                        f"{meta_bytes} bytes or more, over the limit of {MAX_HEADER_BYTES}; the "
                        "layer was not read further"
                    )
                data = self._read_exact(size)
                self._skip(-size % BLOCK, padding=True)
                if kind in (b"x", b"X"):
                    pax.update(self._pax_records(data))
                elif kind == b"L":
                    long_name = _text(data.split(b"\0", 1)[0])
                elif kind == b"K":
                    long_link = _text(data.split(b"\0", 1)[0])
                continue  # a global header (g) applies to no member Solstice reads
            if kind == b"S" and block[482]:
                self._skip_sparse_extensions()
            name = pax.get("path", long_name or name)
            linkname = pax.get("linkpath", long_link or linkname)
            if "size" in pax:
                size = self._pax_size(pax["size"])
            return Member(name, self._kind(kind, name, pax), size, linkname)

    def _header(self, block: bytes) -> tuple[bytes, int, str, str]:
        stored = self._number(block[148:156], "checksum")
        unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
        signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 8 * 32
        if stored not in (unsigned, signed):
            raise self._broken("a header's checksum is wrong")
        kind = block[156:157]
        size = self._number(block[124:136], "size")
        name = _text(block[0:100].split(b"\0", 1)[0])
        linkname = _text(block[157:257].split(b"\0", 1)[0])
        prefix = block[345:500].split(b"\0", 1)[0]
        if block[257:265] == b"ustar\x0000" and prefix:
            name = _text(prefix) + "/" + name
        return kind, size, name, linkname

    def _number(self, field: bytes, what: str) -> int:
        if field[:1] == b"\x80":  # base-256, for sizes of 8 GiB and more
            return int.from_bytes(field[1:], "big")
        if field[:1] == b"\xff":
            raise self._broken(f"a header has a negative {what}")
        digits = field.replace(b"\0", b" ").strip()
        try:
            return int(digits, 8) if digits else 0
        except ValueError:
            raise self._broken(f"a header's {what} is not a number") from None

    def _kind(self, kind: bytes, name: str, pax: dict[str, str]) -> str:
        if kind == b"S" or any(key.startswith("GNU.sparse.") for key in pax):
            return "sparse file"
        if kind in _REGULAR:
            return "directory" if kind == b"\0" and name.endswith("/") else "file"
        return _KINDS.get(kind, "special file")

    def _pax_records(self, data: bytes) -> dict[str, str]:
        records: dict[str, str] = {}
        position = 0
        while position < len(data) and data[position : position + 1] != b"\0":
            space = data.find(b" ", position, position + 20)
            try:
                length = int(data[position:space]) if space > position else 0
            except ValueError:
                length = 0
            record = data[position : position + length]
            if length <= space - position or len(record) != length or not record.endswith(b"\n"):
                raise self._broken("a pax header record is malformed")
            key, sep, value = record[space - position + 1 : -1].partition(b"=")
            if not sep:
                raise self._broken("a pax header record is malformed")
            records[_text(key)] = _text(value)
            position += length
        return records

    def _pax_size(self, value: str) -> int:
        if not value.isdigit():
            raise self._broken(f"a pax size {value[:20]!r} is not a number")
        return int(value)

    def _skip_sparse_extensions(self) -> None:
        while True:
            block = self._read_exact(BLOCK)
            if not block[504]:
                return

    # -- bytes ---------------------------------------------------------------------------------

    def _read(self, size: int) -> bytes:
        self._budget.check()
        try:
            chunk = self._source.read(size)
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
            raise self._broken(str(exc) or type(exc).__name__) from None
        self._budget.take(len(chunk), self._where)
        return chunk

    def _read_exact(self, size: int, *, at_header: bool = False) -> bytes:
        parts: list[bytes] = []
        got = 0
        while got < size:
            chunk = self._read(min(CHUNK, size - got))
            if not chunk:
                if at_header and got == 0:
                    return b""
                raise self._broken("it ends inside a member")
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def _skip(self, size: int, *, padding: bool = False) -> None:
        while size > 0:
            chunk = self._read(min(CHUNK, size))
            if not chunk:
                raise self._broken("it ends inside a member" if not padding else "it ends without padding")
            size -= len(chunk)

    def _broken(self, why: str) -> ContentError:
        return ContentError(f"layer {self._name} is not a readable tar archive: {why}")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class _Reader(Protocol):
    """All the stream reader needs of its source: gzip, zstd and plain files each have it."""

    def read(self, size: int, /) -> bytes: ...


def _decompressed(raw: BinaryIO, compression: str | None) -> _Reader:
    """A reader whose read(n) returns at most n decompressed bytes."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return raw
