"""The policy at load time (files on disk, fresh DNS answers), its allowlist parser, and the host applying it."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from solstice.host import PluginHost, PluginSpec, PluginStartError
from solstice.oci.reference import parse_reference
from solstice.security.addresses import IPAddress
from solstice.security.allowlist import AllowlistError, parse_allowlist
from solstice.security.policy import INTERNAL_WARNING, PATH_WARNING, Policy, PolicyError
from solstice.security.resolve import ResolveError, SystemResolver
from tests.conftest import TESTBED, Standalone, fast_settings


class ChangingResolver:
    """Answers from a dict the test may change between calls (a DNS answer that moves)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def resolve(self, host: str) -> list[IPAddress]:
        if host not in self.answers:
            raise ResolveError(f"{host} does not resolve")
        return [ipaddress.ip_address(a) for a in self.answers[host]]


def executable(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def configmap(mount: Path, name: str) -> Path:
    """The symlink chain Kubernetes makes for a ConfigMap volume: name -> ..data/name -> ..<ts>/name."""
    stamped = mount / "..2026_11_28_03_00_00.123456789"
    executable(stamped / name)
    (mount / "..data").symlink_to(stamped.name)
    (mount / name).symlink_to(f"..data/{name}")
    return mount / name


# -- file:// at load ------------------------------------------------------------------------------


async def test_configmap_symlink_chain_is_followed_and_checked_where_it_ends(tmp_path: Path) -> None:
    link = configmap(tmp_path / "usr/local/plugins", "guard")
    policy = Policy(
        parse_allowlist(f"{tmp_path}/usr/local/plugins/*"),
        standard_dirs=[str(tmp_path / "usr/local/plugins")],
    )
    verdict = await policy.check(f"file://{link}", "load")
    assert verdict.path == os.path.realpath(link)
    assert "..2026_11_28" in verdict.path and verdict.warnings == ()


async def test_a_symlink_out_of_the_allowed_tree_is_refused(tmp_path: Path) -> None:
    target = executable(tmp_path / "elsewhere" / "evil")
    link = tmp_path / "plugins" / "guard"
    link.parent.mkdir()
    link.symlink_to(target)
    policy = Policy(parse_allowlist(f"{tmp_path}/plugins/*"))
    assert (await policy.check(f"file://{link}", "api")).path == str(link)  # the API sees only the name
    with pytest.raises(PolicyError, match=f"resolved to {target}"):
        await policy.check(f"file://{link}", "load")


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777])
async def test_executables_writable_by_group_or_others_are_refused(tmp_path: Path, mode: int) -> None:
    path = executable(tmp_path / "plugin", mode)
    with pytest.raises(
        PolicyError, match=f"writable by group or others \\(mode 0{mode:o}\\); run chmod go-w"
    ):
        await Policy(parse_allowlist("")).check(f"file://{path}", "load")


async def test_standard_directory_warning_uses_the_resolved_path(tmp_path: Path) -> None:
    inside = executable(tmp_path / "std" / "guard")
    outside_link = tmp_path / "home" / "guard"
    outside_link.parent.mkdir()
    outside_link.symlink_to(inside)
    policy = Policy(parse_allowlist(""), standard_dirs=[str(tmp_path / "std")])
    assert (await policy.check(f"file://{outside_link}", "api")).warnings == (PATH_WARNING,)
    assert (await policy.check(f"file://{outside_link}", "load")).warnings == ()


# -- grpc:// at load: fresh answers, and the checked addresses are the dialled ones ----------------


async def test_a_dns_answer_that_moves_inside_is_refused_at_the_next_connect() -> None:
    resolver = ChangingResolver({"plugins.example.com": ["93.184.216.34"]})
    policy = Policy(parse_allowlist(""), resolver=resolver)
    first = await policy.check("grpc://plugins.example.com:50051", "load")
    assert first.dial == "ipv4:93.184.216.34:50051"
    assert first.authority == "plugins.example.com:50051"
    resolver.answers["plugins.example.com"] = ["10.0.0.9"]
    with pytest.raises(PolicyError, match=r"resolves to 10\.0\.0\.9"):
        await policy.check("grpc://plugins.example.com:50051", "load")


async def test_every_checked_address_of_the_first_family_is_dialled() -> None:
    resolver = ChangingResolver(
        {"multi.example.com": ["2606:4700::1111", "93.184.216.34", "2606:4700::1001"]}
    )
    verdict = await Policy(parse_allowlist(""), resolver=resolver).check(
        "grpc://multi.example.com:443", "load"
    )
    assert verdict.dial == "ipv6:[2606:4700::1111]:443,[2606:4700::1001]:443"


async def test_unresolvable_hosts_are_a_warning_at_the_api_and_a_refusal_at_load() -> None:
    policy = Policy(parse_allowlist(""), resolver=ChangingResolver({}))
    verdict = await policy.check("grpc://later.example.com:50051", "api")
    assert "checked again before each connect" in verdict.warnings[0]
    with pytest.raises(PolicyError, match=r"cannot be checked: later\.example\.com does not resolve"):
        await policy.check("grpc://later.example.com:50051", "load")


async def test_localhost_resolves_for_real_and_is_internal() -> None:
    addresses = await SystemResolver().resolve("localhost")
    assert addresses and all(a.is_loopback for a in addresses)
    policy = Policy(parse_allowlist(""))
    with pytest.raises(PolicyError, match="internal network address"):
        await policy.check("grpc://localhost:50051", "load")
    allowed = Policy(parse_allowlist(""), allow_internal=True)
    assert (await allowed.check("grpc://localhost:50051", "load")).warnings == (INTERNAL_WARNING,)


# -- the allowlist parser ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("usr/local/plugins/*", "not a path glob"),
        ("file://relative/*", "must be absolute"),
        ("grpc://10.0.0.0/33", "is not a CIDR"),
        ("grpc://", "needs a host"),
        ("grpc://host:99999", "not a number from 1 to 65535"),
        ("oci://registry-only", "needs registry/repository"),
        ("https://example.com", "not a path glob"),
    ],
)
def test_bad_allowlist_entries_name_the_entry(entry: str, fragment: str) -> None:
    with pytest.raises(AllowlistError, match=fragment) as info:
        parse_allowlist(f"/usr/local/plugins/*, {entry}")
    assert repr(entry) in str(info.value)


async def test_zone_ids_are_escaped_in_the_dial_target() -> None:
    policy = Policy(parse_allowlist(""), allow_internal=True)
    verdict = await policy.check("grpc://[fe80::1%eth0]:50051", "load")
    assert verdict.dial == "ipv6:[fe80::1%25eth0]:50051"


def test_allowlist_details_from_review() -> None:
    allowlist = parse_allowlist(
        "grpc://edge.example.com:50051/*, file:///opt/my%20plugins/*, oci://Reg.Internal/p/*"
    )
    assert allowlist.host_entry("edge.example.com", 50051) and not allowlist.host_entry("edge.example.com", 9)
    assert allowlist.allows_path("/opt/my plugins/x")
    assert allowlist.names_registry("reg.internal") and allowlist.allows_oci(
        parse_reference("oci://REG.internal/p/x")
    )


def test_relative_standard_dirs_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    policy = Policy(parse_allowlist(""), standard_dirs=["data/oci-cache"])
    assert policy.standard_dirs == (str(tmp_path / "data" / "oci-cache"),)


def test_allowlist_entry_kinds() -> None:
    allowlist = parse_allowlist(
        " /a/* ,file:///b/*, grpc://10.0.0.0/8, grpc://fd00::/8, grpc://h:1, grpc://g/*, oci://r/x* ,"
    )
    assert allowlist.paths == ("/a/*", "/b/*")
    assert [str(n) for n in allowlist.networks] == ["10.0.0.0/8", "fd00::/8"]
    assert [(h.host, h.port) for h in allowlist.hosts] == [("h", 1), ("g", None)]
    assert allowlist.oci == ("r/x*",)
    assert allowlist.allows_oci(parse_reference("oci://r/xyz:v1"))
    assert not parse_allowlist("").configured


@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=32))
def test_cidr_entries_contain_exactly_their_network(address: ipaddress.IPv4Address, prefix: int) -> None:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    allowlist = parse_allowlist(f"grpc://{network}")
    assert allowlist.covers_addresses([address])
    outside = (
        network.broadcast_address + 1
        if network.broadcast_address < ipaddress.IPv4Address("255.255.255.255")
        else None
    )
    if outside is not None:
        assert not allowlist.covers_addresses([outside])
        assert not allowlist.covers_addresses([address, outside])  # every address must be inside


@given(st.text(max_size=80))
def test_the_allowlist_parser_only_raises_its_own_error(text: str) -> None:
    with contextlib.suppress(AllowlistError):
        parse_allowlist(text)


# -- the host applies the policy before every start ------------------------------------------------


async def test_the_host_refuses_and_warns_before_starting(tmp_path: Path) -> None:
    writable = tmp_path / "plugin.py"
    writable.write_bytes(TESTBED.read_bytes())
    writable.chmod(0o777)
    async with PluginHost(fast_settings()) as host:
        with pytest.raises(
            PluginStartError, match=r"refused by the security policy: .*writable by group or others"
        ):
            await host.load(PluginSpec(slug="writable", command=f"file://{writable}"))
        writable.chmod(0o755)
        await host.load(PluginSpec(slug="fine", command=f"file://{writable}"))
        assert host.status("fine").warnings == (PATH_WARNING,)


async def test_the_host_refuses_internal_grpc_targets_by_default(standalone: type[Standalone]) -> None:
    server = standalone()
    async with PluginHost(fast_settings(allow_internal_network_access=False)) as host:
        with pytest.raises(PluginStartError, match="targets an internal network address"):
            await host.load(PluginSpec(slug="remote", command=server.command))
    async with PluginHost(fast_settings()) as host:
        await host.load(PluginSpec(slug="remote", command=server.command))
        assert host.status("remote").warnings == (INTERNAL_WARNING,)
