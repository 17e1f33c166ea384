"""Checks of the descriptors in a manifest or index, made before any of them names a request.

A descriptor's digest goes into a registry URL and its size bounds a download, so a digest that is
not `algorithm:hex`, a size that is not a bounded non-negative integer or a malformed mediaType
refuses the whole document with one sentence naming the bad value.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from solstice.oci.errors import ContentError

# The hex length of each digest algorithm the OCI image spec registers.
HEX_LENGTHS = {"sha256": 64, "sha512": 128}
# Sizes are int64 in the spec; nothing Solstice fetches comes near, so a far lower bound is safe.
MAX_SIZE = 1 << 40
_HEX = re.compile(r"[0-9a-f]+")
# RFC 6838 type/subtype, as the OCI image spec's mediaType grammar.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_SHOWN = 100


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def is_digest(value: object) -> bool:
    """True for `algorithm:hex` with a registered algorithm and its exact hex length."""
    if not isinstance(value, str):
        return False
    algorithm, sep, hex_part = value.partition(":")
    length = HEX_LENGTHS.get(algorithm)
    return bool(sep) and length == len(hex_part) and _HEX.fullmatch(hex_part) is not None


def check_digest(value: object, what: str) -> str:
    """`value` when it is a valid digest; otherwise ContentError naming it and `what` carries it."""
    if not is_digest(value):
        raise ContentError(
            f"{what} has the digest {_shown(value)}, which is not sha256:<64 hex> or sha512:<128 hex>; "
            "the document was refused before any request was made with it"
        )
    return str(value)


def check_descriptor(value: object, what: str) -> dict[str, Any]:
    """A descriptor with a valid digest, a bounded non-negative integer size and a mediaType."""
    if not isinstance(value, dict):
        raise ContentError(f"{what} is not a descriptor object; the document was refused")
    check_digest(value.get("digest"), what)
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise ContentError(
            f"{what} has the size {_shown(size)}, which is not an integer from 0 to {MAX_SIZE}; "
            "the document was refused"
        )
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not _MEDIA_TYPE.fullmatch(media_type):
        raise ContentError(
            f"{what} has the mediaType {_shown(media_type)}, which is not a type/subtype media type; "
            "the document was refused"
        )
    return value


def check_document(document: dict[str, Any], where: str) -> None:
    """Check every descriptor of a manifest (config, layers, subject) or index (manifests)."""
    for field in ("config", "subject"):
        if field in document:
            check_descriptor(document[field], f"the {field} of {where}")
    for field, name in (("layers", "layer"), ("manifests", "entry"), ("blobs", "blob")):
        items = document.get(field)
        if items is None:
            continue
        if not isinstance(items, list):
            raise ContentError(f"the {field} of {where} is not a list; the document was refused")
        for number, item in enumerate(items, 1):
            check_descriptor(item, f"{name} {number} of {where}")


def hasher_for(digest: str) -> Any:
    """A new hashlib object for the algorithm of a valid `digest`."""
    return hashlib.new(check_digest(digest, "a digest").partition(":")[0])
