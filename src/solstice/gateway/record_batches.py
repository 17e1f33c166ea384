"""Splits proxy records into data_collection calls that each fit one gRPC message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from solstice.protocol import pb
from solstice.protocol.limits import BATCH_BYTES

# The context.metadata key that names what was cut from a record too large for any call.
TRUNCATED_KEY = "solstice.truncated"
# Room kept for that key and its value (and the growth of the context's length prefix).
_MARK_BYTES = 256
# A record's tag and longest length prefix inside a DataCollectionRequest.
_PREFIX_BYTES = 6


@dataclass
class Split:
    """Records grouped into calls, in their original order, and the records no call could carry."""

    batches: list[list[pb.ProxyRecord]] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)
    lost: int = 0


def split(records: Sequence[tuple[pb.ProxyRecord, int]], config_id: str) -> Split:
    """Group (record, record.ByteSize()) pairs, in order, into calls of at most BATCH_BYTES each.

    A record that alone exceeds a call is shortened by fit(); one that cannot be is counted as lost.
    """
    budget = BATCH_BYTES - (_field_bytes(len(config_id.encode())) if config_id else 0)
    result = Split()
    batch: list[pb.ProxyRecord] = []
    used = 0
    for record, encoded in records:
        size = _field_bytes(encoded)
        if size > budget:
            fitted = fit(record, budget - _PREFIX_BYTES)
            if fitted is None:
                result.lost += 1
                continue
            record = fitted
            result.cut.append(record.context.metadata[TRUNCATED_KEY])
            size = _field_bytes(record.ByteSize())
        if batch and used + size > budget:
            result.batches.append(batch)
            batch, used = [], 0
        batch.append(record)
        used += size
    if batch:
        result.batches.append(batch)
    return result


def fit(record: pb.ProxyRecord, limit: int) -> pb.ProxyRecord | None:
    """A copy of record that encodes to at most limit bytes, or None if cutting cannot get it there.

    The response body is shortened first, then the request body, then the metadata emptied; the
    metadata key TRUNCATED_KEY names each cut part and its size before (bytes; entries for metadata).
    """
    fitted = pb.ProxyRecord()
    fitted.CopyFrom(record)
    cut: list[str] = []
    for name in ("response_body", "request_body"):
        excess = fitted.ByteSize() + _MARK_BYTES - limit
        if excess <= 0:
            break
        body: bytes = getattr(fitted, name)
        if body:
            cut.append(f"{name}:{len(body)}")
            setattr(fitted, name, body[: max(0, len(body) - excess)])
    metadata = fitted.context.metadata
    if fitted.ByteSize() + _MARK_BYTES > limit and metadata:
        cut.append(f"metadata:{len(metadata)}")
        fitted.context.ClearField("metadata")
    fitted.context.metadata[TRUNCATED_KEY] = ",".join(cut)
    return fitted if cut and fitted.ByteSize() <= limit else None


def _field_bytes(length: int) -> int:
    """What a length-delimited field of this length with a one-byte tag encodes to."""
    return 1 + max(1, (length.bit_length() + 6) // 7) + length
