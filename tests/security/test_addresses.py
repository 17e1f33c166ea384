"""Internal addresses and IP literal spellings, checked against the table and the OS resolver."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solstice.security.addresses import (
    IPV4_INTERNAL,
    IPAddress,
    in_networks,
    internal_reason,
    is_internal,
    parse_ip_literal,
)


class Case(NamedTuple):
    text: str
    address: str
    internal: bool
    reason: str  # a fragment of internal_reason(); empty for public addresses


CASES: list[Case] = [
    # Loopback 127.0.0.0/8: both ends, and the addresses just outside.
    Case("127.0.0.1", "127.0.0.1", True, "loopback (127.0.0.0/8)"),
    Case("127.0.0.0", "127.0.0.0", True, "loopback (127.0.0.0/8)"),
    Case("127.255.255.255", "127.255.255.255", True, "loopback (127.0.0.0/8)"),
    Case("126.255.255.255", "126.255.255.255", False, ""),
    Case("128.0.0.0", "128.0.0.0", False, ""),
    # RFC 1918: each block's first and last address, and its neighbours.
    Case("9.255.255.255", "9.255.255.255", False, ""),
    Case("10.0.0.0", "10.0.0.0", True, "private network (10.0.0.0/8, RFC 1918)"),
    Case("10.255.255.255", "10.255.255.255", True, "private network (10.0.0.0/8, RFC 1918)"),
    Case("11.0.0.0", "11.0.0.0", False, ""),
    Case("172.15.255.255", "172.15.255.255", False, ""),
    Case("172.16.0.0", "172.16.0.0", True, "private network (172.16.0.0/12, RFC 1918)"),
    Case("172.31.255.255", "172.31.255.255", True, "private network (172.16.0.0/12, RFC 1918)"),
    Case("172.32.0.0", "172.32.0.0", False, ""),
    Case("192.167.255.255", "192.167.255.255", False, ""),
    Case("192.168.0.0", "192.168.0.0", True, "private network (192.168.0.0/16, RFC 1918)"),
    Case("192.168.255.255", "192.168.255.255", True, "private network (192.168.0.0/16, RFC 1918)"),
    Case("192.169.0.0", "192.169.0.0", False, ""),
    # Carrier-grade NAT 100.64.0.0/10 (Alibaba Cloud's metadata service is inside).
    Case("100.63.255.255", "100.63.255.255", False, ""),
    Case("100.64.0.0", "100.64.0.0", True, "carrier-grade NAT (100.64.0.0/10)"),
    Case("100.100.100.200", "100.100.100.200", True, "carrier-grade NAT"),
    Case("100.127.255.255", "100.127.255.255", True, "carrier-grade NAT (100.64.0.0/10)"),
    Case("100.128.0.0", "100.128.0.0", False, ""),
    # Link-local 169.254.0.0/16, home of the cloud metadata address.
    Case("169.253.255.255", "169.253.255.255", False, ""),
    Case("169.254.0.0", "169.254.0.0", True, "link-local (169.254.0.0/16"),
    Case("169.254.169.254", "169.254.169.254", True, "cloud metadata 169.254.169.254"),
    Case("169.254.255.255", "169.254.255.255", True, "link-local (169.254.0.0/16"),
    Case("169.255.0.0", "169.255.0.0", False, ""),
    # This network 0.0.0.0/8 (0.0.0.0 dials the local host on Linux).
    Case("0.0.0.0", "0.0.0.0", True, "this network (0.0.0.0/8)"),
    Case("0.255.255.255", "0.255.255.255", True, "this network (0.0.0.0/8)"),
    Case("1.0.0.0", "1.0.0.0", False, ""),
    # Multicast 224.0.0.0/4, reserved 240.0.0.0/4 and broadcast, which wins over reserved.
    Case("223.255.255.255", "223.255.255.255", False, ""),
    Case("224.0.0.0", "224.0.0.0", True, "multicast (224.0.0.0/4)"),
    Case("239.255.255.255", "239.255.255.255", True, "multicast (224.0.0.0/4)"),
    Case("240.0.0.0", "240.0.0.0", True, "reserved (240.0.0.0/4)"),
    Case("255.255.255.254", "255.255.255.254", True, "reserved (240.0.0.0/4)"),
    Case("255.255.255.255", "255.255.255.255", True, "broadcast"),
    # Public addresses, including special-purpose ranges deliberately left public.
    Case("8.8.8.8", "8.8.8.8", False, ""),
    Case("1.1.1.1", "1.1.1.1", False, ""),
    Case("11.0.0.1", "11.0.0.1", False, ""),
    Case("192.169.0.1", "192.169.0.1", False, ""),
    Case("192.0.2.1", "192.0.2.1", False, ""),
    Case("198.18.0.1", "198.18.0.1", False, ""),
    Case("203.0.113.7", "203.0.113.7", False, ""),
    # inet_aton spellings: one part (decimal, hex, octal), short forms, mixed bases.
    Case("2130706433", "127.0.0.1", True, "loopback"),
    Case("0x7f000001", "127.0.0.1", True, "loopback"),
    Case("0X7F000001", "127.0.0.1", True, "loopback"),
    Case("017700000001", "127.0.0.1", True, "loopback"),
    Case("0177.0.0.1", "127.0.0.1", True, "loopback"),
    Case("127.1", "127.0.0.1", True, "loopback"),
    Case("127.0.1", "127.0.0.1", True, "loopback"),
    Case("0x7f.1", "127.0.0.1", True, "loopback"),
    Case("0x7f.0.0.1", "127.0.0.1", True, "loopback"),
    Case("127.0.0.01", "127.0.0.1", True, "loopback"),
    Case("0177.0x0.0.01", "127.0.0.1", True, "loopback"),
    Case("0000000000177.0x000000000.1", "127.0.0.1", True, "loopback"),
    Case("0", "0.0.0.0", True, "this network"),
    Case("0xcafe", "0.0.202.254", True, "this network"),
    Case("167772161", "10.0.0.1", True, "private network (10.0.0.0/8"),
    Case("0xa.0xb.0xc.0xd", "10.11.12.13", True, "private network (10.0.0.0/8"),
    Case("012.0.0.1", "10.0.0.1", True, "private network (10.0.0.0/8"),
    Case("0xa9fea9fe", "169.254.169.254", True, "cloud metadata"),
    Case("169.254.43518", "169.254.169.254", True, "cloud metadata"),
    Case("4294967295", "255.255.255.255", True, "broadcast"),
    Case("037777777777", "255.255.255.255", True, "broadcast"),
    # Leading zeros mean octal: these look private or loopback and are not.
    Case("010.0.0.1", "8.0.0.1", False, ""),
    Case("0127.0.0.1", "87.0.0.1", False, ""),
    Case("134744072", "8.8.8.8", False, ""),
    Case("1.16777215", "1.255.255.255", False, ""),
    # What Python hands the resolver: IDNA folds full-width digits and the ideographic full stop,
    # C stops at a NUL.
    Case("\uff11\uff12\uff17.0.0.1", "127.0.0.1", True, "loopback"),
    Case("127\u30020\u30020\u30021", "127.0.0.1", True, "loopback"),
    Case("127.0.0.1\x00.example.com", "127.0.0.1", True, "loopback"),
    # Brackets are stripped whatever they hold, as gRPC does.
    Case("[0x7f.1]", "127.0.0.1", True, "loopback"),
    # IPv6 loopback and unspecified, in several spellings.
    Case("::1", "::1", True, "loopback (::1)"),
    Case("[::1]", "::1", True, "loopback (::1)"),
    Case("0:0:0:0:0:0:0:1", "::1", True, "loopback (::1)"),
    Case("::", "::", True, "unspecified (::)"),
    Case("[::]", "::", True, "unspecified (::)"),
    # Unique local fc00::/7 (AWS's IPv6 metadata address is inside) and its neighbours.
    Case("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", False, ""),
    Case("fc00::", "fc00::", True, "unique local (fc00::/7)"),
    Case("fd00:ec2::254", "fd00:ec2::254", True, "unique local (fc00::/7)"),
    Case(
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        True,
        "unique local",
    ),
    Case("fe00::", "fe00::", False, ""),
    # Link-local fe80::/10 with zone ids (plain, URL-escaped, bracketed) and upper case.
    Case("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", False, ""),
    Case("fe80::", "fe80::", True, "link-local (fe80::/10)"),
    Case("fe80::1%lo", "fe80::1%lo", True, "link-local (fe80::/10)"),
    Case("[fe80::1%25eth0]", "fe80::1%25eth0", True, "link-local (fe80::/10)"),
    Case("fe80::1%lo%x", "fe80::1", True, "link-local (fe80::/10)"),
    Case("FE80::ABCD", "fe80::abcd", True, "link-local (fe80::/10)"),
    Case(
        "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        True,
        "link-local",
    ),
    # Site-local fec0::/10 (deprecated, still not public) and multicast ff00::/8.
    Case("fec0::1", "fec0::1", True, "site-local (fec0::/10)"),
    Case(
        "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        True,
        "site-local",
    ),
    Case("ff00::", "ff00::", True, "multicast (ff00::/8)"),
    Case("ff02::1", "ff02::1", True, "multicast (ff00::/8)"),
    Case(
        "FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        True,
        "multicast",
    ),
    # Public IPv6.
    Case("2606:4700::1111", "2606:4700::1111", False, ""),
    Case("[2001:4860:4860::8888]", "2001:4860:4860::8888", False, ""),
    Case("2001:db8::1", "2001:db8::1", False, ""),
    # IPv4-mapped ::ffff:0:0/96: dotted and hex tails, upper case, brackets.
    Case("::ffff:127.0.0.1", "::ffff:127.0.0.1", True, "IPv4-mapped loopback (127.0.0.0/8)"),
    Case("::ffff:7f00:1", "::ffff:127.0.0.1", True, "IPv4-mapped loopback (127.0.0.0/8)"),
    Case("::FFFF:10.0.0.1", "::ffff:10.0.0.1", True, "IPv4-mapped private network (10.0.0.0/8"),
    Case("[::ffff:169.254.169.254]", "::ffff:169.254.169.254", True, "IPv4-mapped link-local"),
    Case("0:0:0:0:0:ffff:100.64.0.1", "::ffff:100.64.0.1", True, "IPv4-mapped carrier-grade NAT"),
    Case("::ffff:0.0.0.0", "::ffff:0.0.0.0", True, "IPv4-mapped this network"),
    Case("::ffff:8.8.8.8", "::ffff:8.8.8.8", False, ""),
    # IPv4-compatible ::/96 (other than :: and ::1).
    Case("::127.0.0.1", "::127.0.0.1", True, "IPv4-compatible loopback (127.0.0.0/8)"),
    Case("::10.0.0.1", "::10.0.0.1", True, "IPv4-compatible private network (10.0.0.0/8"),
    Case("::0.0.0.2", "::2", True, "IPv4-compatible this network (0.0.0.0/8)"),
    Case("::8.8.8.8", "::8.8.8.8", False, ""),
    # NAT64: the well-known prefix embeds an address; the local-use prefix is internal as a whole.
    Case("64:ff9b::127.0.0.1", "64:ff9b::7f00:1", True, "NAT64 loopback (127.0.0.0/8)"),
    Case("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe", True, "NAT64 link-local (169.254.0.0/16"),
    Case("64:ff9b::8.8.8.8", "64:ff9b::808:808", False, ""),
    Case("64:ff9b:1::a00:1", "64:ff9b:1::a00:1", True, "local-use NAT64 (64:ff9b:1::/48)"),
    # 6to4 2002::/16 carries the IPv4 address in bits 16-47.
    Case("2002:7f00:1::", "2002:7f00:1::", True, "6to4 loopback (127.0.0.0/8)"),
    Case("2002:c0a8:101::1", "2002:c0a8:101::1", True, "6to4 private network (192.168.0.0/16"),
    Case("2002:808:808::1", "2002:808:808::1", False, ""),
    # Teredo 2001::/32 carries the client's IPv4 address inverted in the last 32 bits.
    Case(
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        True,
        "Teredo loopback",
    ),
    Case("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:0:4136:e378:8000:63bf:3fff:fdd2", False, ""),
]

# Host names: never IP literals, whatever they resolve to. Trailing dots, out-of-range parts,
# 8 or 9 in an octal part and whitespace are all refused by getaddrinfo's numeric parse.
NOT_LITERALS: list[str] = [
    "example.com",
    "localhost",
    "localhost.",
    "cafe.example",
    "1.2.3.4.example.com",
    "0x.example",
    "cafe",
    "bad.cafe",
    "deadbeef",
    "",
    "999.1.1.1",
    "256.0.0.1",
    "1.2.3.256",
    "1.2.65536",
    "1.16777216",
    "4294967296",
    "0x100000000",
    "040000000000",
    "127.0.0.1.",
    "127.1.",
    "2130706433.",
    "1.2.3.4.5",
    "08.1.1.1",
    "0x",
    "0x.1",
    "1.0x",
    "0xg",
    "00x1",
    "1.",
    "1..2",
    ".1.2.3",
    " 127.0.0.1",
    "127.0.0.1 ",
    "127.0.0.1\t",
    "127.0.0.1:80",
    "127.0.0.1%lo",
    "-1",
    "+1",
    "1_000",
    "[127.0.0.1",
    "::ffff:127.1",
    "::ffff:0177.0.0.1",
    "::1.",
    "1::2::3",
    "::1/128",
    "fe80::1%",
    "\u0663.1.1.1",
]


def _os_numeric(text: str, family: socket.AddressFamily) -> IPAddress | None:
    """The address getaddrinfo makes of `text` without resolving, or None if it is not numeric."""
    try:
        answers = socket.getaddrinfo(text, None, family=family, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        return None
    return ip_address(str(answers[0][4][0]).partition("%")[0])


def _unbracketed(text: str) -> str:
    return text[1:-1] if text.startswith("[") and text.endswith("]") else text


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert len({case.text for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[repr(case.text) for case in CASES])
def test_table(case: Case) -> None:
    address = parse_ip_literal(case.text)
    assert address == ip_address(case.address)
    reason = internal_reason(address)
    assert is_internal(address) is case.internal
    if case.internal:
        assert reason is not None and case.reason in reason
    else:
        assert reason is None


@pytest.mark.parametrize("text", NOT_LITERALS)
def test_host_names_are_not_literals(text: str) -> None:
    assert parse_ip_literal(text) is None


@pytest.mark.parametrize("case", CASES, ids=[repr(case.text) for case in CASES])
def test_literals_agree_with_getaddrinfo(case: Case) -> None:
    text = _unbracketed(case.text)
    address = parse_ip_literal(case.text)
    if isinstance(address, IPv4Address):
        assert _os_numeric(text, socket.AF_INET) == address
    elif "%" not in text or text.endswith("%lo"):
        # Other zone ids name interfaces this machine may not have; ipaddress is laxer there.
        assert _os_numeric(text, socket.AF_INET6) == IPv6Address(str(address).partition("%")[0])


@pytest.mark.parametrize("text", NOT_LITERALS)
def test_host_names_are_not_numeric_to_getaddrinfo(text: str) -> None:
    assert _os_numeric(text, socket.AF_INET) is None
    assert _os_numeric(text, socket.AF_INET6) is None


def test_every_range_boundary_has_a_case() -> None:
    """Each internal IPv4 range has its first and last address in the table, and both neighbours."""
    tabled = {int(ip_address(case.address)) for case in CASES}
    for internal in IPV4_INTERNAL:
        first, last = int(internal.network.network_address), int(internal.network.broadcast_address)
        wanted = (
            {first, last}
            | ({first - 1} if first > 0 else set())
            | ({last + 1} if last < 2**32 - 1 else set())
        )
        assert wanted <= tabled, internal.network


def test_long_inet_aton_parts_are_literals() -> None:
    # C resolvers have no label length limit, so padding with zeros does not make a host name.
    assert parse_ip_literal("0x" + "0" * 200 + "7f.1") == IPv4Address("127.0.0.1")
    assert parse_ip_literal("0" * 300 + "177.1") == IPv4Address("127.0.0.1")
    assert parse_ip_literal("1" * 5000) is None


# -- properties -----------------------------------------------------------------------------------

uint32 = st.integers(min_value=0, max_value=0xFFFFFFFF)


@given(uint32)
def test_single_part_spellings_agree(n: int) -> None:
    expected = IPv4Address(n)
    for text in (str(n), hex(n), f"0X{n:X}", f"0{n:o}", str(expected)):
        assert parse_ip_literal(text) == expected, text


def _spell(value: int, base: int) -> str:
    return {8: f"0{value:o}", 10: str(value), 16: f"0x{value:x}"}[base]


@given(uint32, st.integers(min_value=1, max_value=4), st.lists(st.sampled_from([8, 10, 16]), min_size=4))
def test_mixed_short_forms_agree(n: int, count: int, bases: list[int]) -> None:
    # count parts: count-1 leading bytes, the last part holding every remaining byte.
    remaining_bits = 32 - 8 * (count - 1)
    leading = [(n >> (32 - 8 * (i + 1))) & 0xFF for i in range(count - 1)]
    parts = [*leading, n & ((1 << remaining_bits) - 1)]
    text = ".".join(_spell(value, base) for value, base in zip(parts, bases, strict=False))
    assert parse_ip_literal(text) == IPv4Address(n), text


@given(st.text(alphabet="0123456789abcdefxX.", max_size=24))
def test_ipv4_agrees_with_inet_aton(text: str) -> None:
    # Over this alphabet glibc's inet_aton is exactly getaddrinfo's numeric parse.
    try:
        expected: IPv4Address | None = IPv4Address(socket.inet_aton(text))
    except OSError:
        expected = None
    assert parse_ip_literal(text) == expected


@settings(deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEF:.%lo[]", max_size=24))
def test_numeric_to_getaddrinfo_means_a_literal(text: str) -> None:
    for family in (socket.AF_INET, socket.AF_INET6):
        numeric = _os_numeric(text, family)
        if numeric is not None:
            parsed = parse_ip_literal(text)
            assert parsed is not None
            assert ip_address(str(parsed).partition("%")[0]) == numeric


@given(st.ip_addresses(v=4))
def test_mapped_addresses_classify_like_their_ipv4_address(address: IPv4Address) -> None:
    mapped = IPv6Address(f"::ffff:{address}")
    assert is_internal(mapped) is is_internal(address)
    reason, mapped_reason = internal_reason(address), internal_reason(mapped)
    if reason is None:
        assert mapped_reason is None
    else:
        assert mapped_reason == f"IPv4-mapped {reason}"


@st.composite
def networks(draw: st.DrawFn, version: int) -> IPv4Network | IPv6Network:
    bits = 32 if version == 4 else 128
    prefix = draw(st.integers(min_value=0, max_value=bits))
    base = draw(st.ip_addresses(v=version))
    network_type = IPv4Network if version == 4 else IPv6Network
    return network_type((int(base), prefix), strict=False)


def _mapped(address: IPv4Address) -> IPv6Address:
    return IPv6Address(0xFFFF << 32 | int(address))


@given(st.ip_addresses(), st.lists(st.one_of(networks(4), networks(6)), max_size=4))
def test_in_networks_agrees_with_containment(
    address: IPAddress, nets: list[IPv4Network | IPv6Network]
) -> None:
    def contains(network: IPv4Network | IPv6Network) -> bool:
        if isinstance(address, IPv4Address):
            return address in network or _mapped(address) in network
        mapped = address.ipv4_mapped
        return address in network or (mapped is not None and mapped in network)

    assert in_networks(address, nets) is any(contains(network) for network in nets)


@given(st.ip_addresses(v=4), networks(4))
def test_mapped_address_is_in_its_ipv4_network(address: IPv4Address, network: IPv4Network) -> None:
    assert in_networks(_mapped(address), [network]) is (address in network)
    assert in_networks(address, [network]) is (address in network)


def test_in_networks_examples() -> None:
    ten = [IPv4Network("10.0.0.0/8")]
    assert in_networks(IPv4Address("10.1.2.3"), ten)
    assert in_networks(IPv6Address("::ffff:10.1.2.3"), ten)
    assert not in_networks(IPv6Address("::10.1.2.3"), ten)
    assert not in_networks(IPv6Address("64:ff9b::10.1.2.3"), ten)
    assert not in_networks(IPv4Address("11.0.0.1"), ten)
    assert not in_networks(IPv4Address("10.0.0.1"), [])
    assert in_networks(IPv4Address("10.0.0.1"), [IPv6Network("::ffff:10.0.0.0/104")])
    assert in_networks(IPv6Address("fe80::1%eth0"), [IPv6Network("fe80::/10")])


@given(st.text())
def test_parse_never_raises(text: str) -> None:
    result = parse_ip_literal(text)
    assert result is None or isinstance(result, IPv4Address | IPv6Address)
