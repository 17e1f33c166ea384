"""Which IP addresses are internal, and which host strings are IP literals in any spelling.

grpc:// targets on internal networks are refused by default. Host names are resolved elsewhere and
every answer is checked here; a literal has to be recognised however it is spelt, or `0x7f.1` and
`2130706433` would pass for host names while a resolver dials 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import NamedTuple

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


class InternalRange(NamedTuple):
    """A network whose addresses are internal, and the reason a refusal gives for it."""

    network: IPNetwork
    reason: str


class Embedding(NamedTuple):
    """An IPv6 prefix whose addresses carry the IPv4 address their traffic ends up at."""

    network: IPv6Network
    label: str
    # Bits to the right of the 32-bit IPv4 address inside the IPv6 address.
    shift: int
    # Teredo stores its client address with every bit flipped.
    xor: int


# First match wins, so a range must come before any wider range that contains it.
# Special-purpose ranges that are not internal stay public on purpose: documentation
# (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) and benchmarking (198.18.0.0/15) addresses
# and the IETF block 192.0.0.0/24 are never routed to a private network by design, so refusing
# them would add no protection, and labs that do use them can allowlist them like any address.
IPV4_INTERNAL: tuple[InternalRange, ...] = (
    InternalRange(IPv4Network("0.0.0.0/8"), "this network (0.0.0.0/8)"),
    InternalRange(IPv4Network("10.0.0.0/8"), "private network (10.0.0.0/8, RFC 1918)"),
    # Alibaba Cloud's metadata service, 100.100.100.200, lives here.
    InternalRange(IPv4Network("100.64.0.0/10"), "carrier-grade NAT (100.64.0.0/10)"),
    InternalRange(IPv4Network("127.0.0.0/8"), "loopback (127.0.0.0/8)"),
    InternalRange(
        IPv4Network("169.254.0.0/16"), "link-local (169.254.0.0/16; includes cloud metadata 169.254.169.254)"
    ),
    InternalRange(IPv4Network("172.16.0.0/12"), "private network (172.16.0.0/12, RFC 1918)"),
    InternalRange(IPv4Network("192.168.0.0/16"), "private network (192.168.0.0/16, RFC 1918)"),
    InternalRange(IPv4Network("224.0.0.0/4"), "multicast (224.0.0.0/4)"),
    InternalRange(IPv4Network("255.255.255.255/32"), "broadcast"),
    InternalRange(IPv4Network("240.0.0.0/4"), "reserved (240.0.0.0/4)"),
)

# Checked before IPV6_EMBEDDINGS: :: and ::1 lie inside the IPv4-compatible ::/96.
# Documentation (2001:db8::/32) and other special-purpose prefixes stay public, as for IPv4.
IPV6_INTERNAL: tuple[InternalRange, ...] = (
    InternalRange(IPv6Network("::/128"), "unspecified (::)"),
    InternalRange(IPv6Network("::1/128"), "loopback (::1)"),
    # RFC 8215: a translator prefix for use inside one network, so its IPv4 side is that
    # network's own; where the IPv4 address sits depends on the operator's prefix length, so
    # the whole prefix counts as internal rather than guessing at an embedded address.
    InternalRange(IPv6Network("64:ff9b:1::/48"), "local-use NAT64 (64:ff9b:1::/48)"),
    # AWS's IPv6 metadata service, fd00:ec2::254, lives here.
    InternalRange(IPv6Network("fc00::/7"), "unique local (fc00::/7)"),
    InternalRange(IPv6Network("fe80::/10"), "link-local (fe80::/10)"),
    InternalRange(IPv6Network("fec0::/10"), "site-local (fec0::/10)"),
    InternalRange(IPv6Network("ff00::/8"), "multicast (ff00::/8)"),
)

# Traffic to these addresses is delivered to the embedded IPv4 address (by the kernel, a
# translator or a relay), so they are as internal as that address.
IPV6_EMBEDDINGS: tuple[Embedding, ...] = (
    Embedding(IPv6Network("::ffff:0:0/96"), "IPv4-mapped", 0, 0),
    Embedding(IPv6Network("::/96"), "IPv4-compatible", 0, 0),
    Embedding(IPv6Network("64:ff9b::/96"), "NAT64", 0, 0),
    Embedding(IPv6Network("2002::/16"), "6to4", 80, 0),
    Embedding(IPv6Network("2001::/32"), "Teredo", 0, 0xFFFFFFFF),
)

_IPV4_MAPPED_PREFIX = 0xFFFF << 32
_IPV4_ALPHABET = frozenset("0123456789abcdefABCDEFxX.")
_DIGITS = {
    8: frozenset("01234567"),
    10: frozenset("0123456789"),
    16: frozenset("0123456789abcdefABCDEF"),
}
# Significant digits of 0xFFFFFFFF in each base: a longer part cannot fit, and checking first
# keeps int() away from arbitrarily long decimal strings (slow, and refused past 4300 digits).
_MAX_DIGITS = {8: 11, 10: 10, 16: 8}


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address `host` denotes if a resolver would take it as an IP literal, else None.

    Accepts every inet_aton spelling of IPv4 and IPv6 with or without brackets and zone id.
    """
    text = _as_resolver_sees_it(host)
    if text is None:
        return None
    # URL authorities bracket IPv6 literals; gRPC strips brackets whatever they hold.
    if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
        text = text[1:-1]
    if ":" in text:
        return _parse_ipv6(text)
    return _parse_ipv4(text)


def internal_reason(address: IPAddress) -> str | None:
    """Why `address` is internal, naming its range; None for a public address."""
    if isinstance(address, IPv4Address):
        return _first_reason(address, IPV4_INTERNAL)
    reason = _first_reason(address, IPV6_INTERNAL)
    if reason is not None:
        return reason
    for embedding in IPV6_EMBEDDINGS:
        if address in embedding.network:
            embedded = IPv4Address(((int(address) >> embedding.shift) & 0xFFFFFFFF) ^ embedding.xor)
            embedded_reason = _first_reason(embedded, IPV4_INTERNAL)
            return None if embedded_reason is None else f"{embedding.label} {embedded_reason}"
    return None


def is_localhost(host: str) -> bool:
    """Whether `host` is a localhost name (RFC 6761: loopback whatever a resolver answers)."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def internal_reason_for(host: str, address: IPAddress) -> str | None:
    """Why `address`, reached by the name `host`, is internal (localhost names always are), or None."""
    if is_localhost(host):
        return "loopback (localhost)"
    return internal_reason(address)


def is_internal(address: IPAddress) -> bool:
    """Whether `address` is on an internal network (see internal_reason)."""
    return internal_reason(address) is not None


def in_networks(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    """Whether `address` is inside any of `networks`, an IPv4-mapped address counting as its IPv4 one."""
    # A socket sends to ::ffff:a.b.c.d as to a.b.c.d, so both spellings must match the same entry.
    forms: list[IPAddress] = [address]
    if isinstance(address, IPv4Address):
        forms.append(IPv6Address(_IPV4_MAPPED_PREFIX | int(address)))
    elif address.ipv4_mapped is not None:
        forms.append(address.ipv4_mapped)
    return any(form in network for form in forms for network in networks)


def _first_reason(address: IPAddress, ranges: Sequence[InternalRange]) -> str | None:
    for internal in ranges:
        if address in internal.network:
            return internal.reason
    return None


def _as_resolver_sees_it(host: str) -> str | None:
    """`host` as the C resolver receives it; None when Python could not hand it over at all."""
    if not host.isascii():
        # Python's socket functions IDNA-encode a host first, and nameprep folds full-width
        # digits and the ideographic full stop (U+3002) to ASCII, so they dial as digits and dots.
        # ASCII is passed through untouched (C resolvers have no 63-character label limit).
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    # Python does not reject an embedded NUL, so C reads the host only up to it.
    return host.partition("\x00")[0]


def _parse_ipv4(text: str) -> IPv4Address | None:
    # getaddrinfo takes the numeric forms of BSD inet_aton, but only the whole string: no
    # trailing dot or whitespace. The alphabet check keeps host names such as cafe.example out.
    if not text or not _IPV4_ALPHABET.issuperset(text):
        return None
    parts = text.split(".")
    if len(parts) > 4:
        return None
    values: list[int] = []
    for part in parts:
        value = _parse_ipv4_part(part)
        if value is None:
            return None
        values.append(value)
    # Every part but the last is one byte; the last fills the remaining bytes ("127.1").
    *leading, last = values
    remaining_bits = 8 * (4 - len(leading))
    if any(value > 0xFF for value in leading) or last >= 1 << remaining_bits:
        return None
    number = 0
    for value in leading:
        number = number << 8 | value
    return IPv4Address(number << remaining_bits | last)


def _parse_ipv4_part(part: str) -> int | None:
    if part[:2] in ("0x", "0X"):
        base, digits = 16, part[2:]
    elif part.startswith("0"):
        base, digits = 8, part
    else:
        base, digits = 10, part
    if not digits or not _DIGITS[base].issuperset(digits):
        return None
    significant = digits.lstrip("0") or "0"
    if len(significant) > _MAX_DIGITS[base]:
        return None
    return int(significant, base)


def _parse_ipv6(text: str) -> IPv6Address | None:
    address, has_zone, zone = text.partition("%")
    try:
        bare = IPv6Address(address)
    except ValueError:
        return None
    if not has_zone:
        return bare
    if not zone:
        return None
    try:
        return IPv6Address(text)
    except ValueError:
        # glibc accepts zone ids ipaddress refuses (a second "%"); the address is what is dialled.
        return bare
