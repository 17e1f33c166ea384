"""The command security policy, rule by rule: each table row is a command and the expected verdict.

Rows are grouped by the rule they exercise; within a group the legitimate commands come first, then
the hostile ones. `ok` rows list the warnings expected (an empty tuple: none); refused rows give a
fragment of the refusal message. Host names resolve through a fake resolver (`DNS` below), so no
row depends on this machine's network; one test at the end resolves `localhost` for real.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest

from solstice.security.addresses import IPAddress
from solstice.security.allowlist import parse_allowlist
from solstice.security.policy import INTERNAL_WARNING, PATH_WARNING, Policy, PolicyError, Stage
from solstice.security.resolve import ResolveError

# name -> answers (A and AAAA) of the fake resolver; a name that is absent does not resolve.
DNS: dict[str, list[str]] = {
    "plugins.example.com": ["93.184.216.34"],
    "dual.example.com": ["93.184.216.34", "2606:2800:220:1::1"],
    "metadata.example.com": ["169.254.169.254"],
    "rebind.example.com": ["93.184.216.34", "10.0.0.7"],  # one internal answer is enough
    "v6-internal.example.com": ["fd12:3456::1"],
    "mapped.example.com": ["::ffff:192.168.1.1"],
    "plugins.prod.svc": ["10.96.0.12"],
    "other.prod.svc": ["10.96.0.13"],
    "registry.example.com": ["93.184.216.35"],
    "registry.internal": ["192.168.10.5"],
    "localhost": ["127.0.0.1", "::1"],
}


class FakeResolver:
    """Answers from DNS; counts lookups so tests can see a resolution happened."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def resolve(self, host: str) -> list[IPAddress]:
        self.lookups.append(host)
        host = host.lower().rstrip(".")  # as real resolvers do
        if host not in DNS:
            raise ResolveError(f"{host} does not resolve ([Errno -2] Name or service not known)")
        return [ipaddress.ip_address(a) for a in DNS[host]]


@dataclass(frozen=True)
class Env:
    """The policy's settings for a group of rows."""

    allowlist: str = ""
    allow_internal: bool = False
    block_internal_urls: bool = False
    stage: Stage = "api"

    def policy(self) -> Policy:
        return Policy(
            parse_allowlist(self.allowlist),
            allow_internal=self.allow_internal,
            block_internal_urls=self.block_internal_urls,
            standard_dirs=("/usr/local/bin", "/usr/bin", "/opt/plugins", "/plugins", "/usr/local/plugins",
                           "/var/cache/solstice/oci"),
            resolver=FakeResolver(),
        )  # fmt: skip


DEFAULT = Env()
DEV = Env(allow_internal=True)
ALLOWLIST = Env(
    allowlist="/usr/local/plugins/*, grpc://10.0.0.0/8, grpc://plugins.prod.svc/*, "
    "grpc://edge.example.com:50051, oci://registry.example.com/plugins/*, oci://registry.internal/*"
)
BLOCK_URLS = Env(block_internal_urls=True)


@dataclass(frozen=True)
class Row:
    """One command and what the policy must answer."""

    command: str
    env: Env
    refused: str | None = None  # a fragment of the refusal, or None when accepted
    warnings: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return self.command[:60]


def ok(command: str, env: Env = DEFAULT, *warnings: str) -> Row:
    return Row(command, env, None, tuple(warnings))


def refused(command: str, fragment: str, env: Env = DEFAULT) -> Row:
    return Row(command, env, fragment)


ROWS: list[Row] = [
    # -- Rule: a command is a URL with a known scheme, of bounded length, without control characters.
    ok("file:///usr/local/bin/my-plugin"),
    ok("grpc://plugins.example.com:50051"),
    ok("oci://registry.example.com/plugins/my-plugin:v1.0.0"),
    ok("FILE:///usr/local/bin/my-plugin"),  # schemes are case-insensitive
    refused("/usr/local/bin/my-plugin", "write it as file:///usr/local/bin/my-plugin"),
    refused("my-plugin --flag", "is not a URL"),
    refused("http://plugins.example.com:80", "unknown command scheme 'http'"),
    refused("ssh://plugins.example.com", "unknown command scheme 'ssh'"),
    refused("javascript://alert(1)", "unknown command scheme"),
    refused("file:///usr/local/bin/" + "a" * 2100, "the limit is 2048"),
    refused("file:///usr/local/bin/x\x00y", "control characters"),
    refused("file:///usr/local/bin/x\nrm -rf /", "control characters"),
    refused("grpc://plugins.example.com:50051\r\n", "control characters"),
    refused("file:///usr/local/bin/x%00.sh", "NUL byte"),
    refused("", "is not a URL"),
    # -- Rule: file:// needs a clean absolute path; no shell ever sees it.
    ok("file:///opt/plugins/guard"),
    ok("file:///plugins/guard"),
    ok("file:///usr/bin/guard"),
    ok("file:///usr/local/plugins/sub/dir/guard"),
    ok("file:///var/cache/solstice/oci/plugins/abc/plugin"),  # the OCI cache is a standard directory
    ok("file:///usr/local/bin/my%20plugin"),
    ok("file:///usr/local/bin/a;rm -rf /"),  # just an odd file name: nothing is interpreted
    refused("file://./my-plugin", "write it as file:///usr/local/bin/my-plugin"),
    refused("file://my-plugin", "need an absolute path"),
    refused("file://plugins/guard", "need an absolute path"),
    refused("file:///usr/local/bin/../../etc/passwd", "'..' segments"),
    refused("file:///usr/local/bin/./guard", "'.' or '..' segments"),
    refused("file:////usr/local/bin/guard", "repeated slashes"),
    refused("file:///usr/local//bin/guard", "repeated slashes"),
    # -- Rule: paths outside the standard directories are allowed with a warning.
    ok("file:///home/alice/plugin", DEFAULT, PATH_WARNING),
    ok("file:///tmp/plugin", DEFAULT, PATH_WARNING),
    ok("file:///usr/local/binary/plugin", DEFAULT, PATH_WARNING),  # a prefix is not a directory
    ok("file:///opt/plugins-old/x", DEFAULT, PATH_WARNING),
    # -- Rule: grpc:// needs host:port, no credentials, no path.
    ok("grpc://plugins.example.com:50051/"),
    ok("grpc://[2606:4700::1111]:50051"),
    ok("grpc://8.8.8.8:443"),
    refused("grpc://plugins.example.com", "needs a host and a port"),
    refused("grpc://plugins.example.com:", "needs a host and a port"),
    refused("grpc://plugins.example.com:0", "not a number from 1 to 65535"),
    refused("grpc://plugins.example.com:65536", "not a number from 1 to 65535"),
    refused("grpc://plugins.example.com:50x51", "not a number from 1 to 65535"),
    refused("grpc://plugins.example.com:-1", "not a number from 1 to 65535"),
    refused("grpc://user:secret@plugins.example.com:50051", "must not carry credentials"),
    refused("grpc://plugins.example.com:50051/admin", "nothing after the port"),
    refused("grpc://plugins.example.com:50051?x=1", "nothing after the port"),
    refused("grpc://user:S3CRET@plugins.example.com:1/x", "must not carry credentials"),  # before any echo
    refused("file://u:S3CRET@host/usr/local/bin/x", "must not carry credentials"),
    # A zone or bracket in a host could add addresses to the dial target: only plain hosts pass.
    refused("grpc://2001:4860:4860::8888%25lo]:1,[::1:50051", "is not a host name"),
    refused("grpc://[2001:db8::1]:1,[::1]:50051", "is not a number from 1 to 65535"),
    refused("grpc://plugins.example.com,127.0.0.1:50051", "is not a host name"),
    refused("grpc://evil\u2028host:50051", "control characters"),
    refused("grpc://bad%host:50051", "is not a host name"),
    refused("file:///usr/local/bin/x%0A%1b[31mERROR", "control characters once decoded"),
    refused("file:///usr/local/bin/x\u0085y", "control characters"),
    refused("file:///usr/local/bin/x%FF", "not UTF-8"),
    # -- Rule: grpc:// targets on internal networks are refused by default, in every spelling.
    ok("grpc://11.0.0.1:50051"),
    ok("grpc://172.15.255.255:50051"),
    ok("grpc://172.32.0.1:50051"),
    ok("grpc://192.169.0.1:50051"),
    ok("grpc://100.128.0.1:50051"),
    ok("grpc://dual.example.com:50051"),
    refused("grpc://127.0.0.1:50051", "loopback"),
    refused("grpc://127.255.255.254:50051", "loopback"),
    refused("grpc://localhost:50051", "loopback"),
    refused("grpc://LOCALHOST.:50051", "loopback"),
    refused("grpc://api.localhost:50051", "loopback"),  # *.localhost never leaves the host
    refused("grpc://10.0.0.1:50051", "10.0.0.0/8"),
    refused("grpc://172.16.0.1:50051", "172.16.0.0/12"),
    refused("grpc://172.31.255.255:50051", "172.16.0.0/12"),
    refused("grpc://192.168.1.1:50051", "192.168.0.0/16"),
    refused("grpc://169.254.169.254:80", "link-local"),
    refused("grpc://100.64.0.1:50051", "100.64.0.0/10"),
    refused("grpc://0.0.0.0:50051", "0.0.0.0/8"),
    refused("grpc://224.0.0.1:50051", "multicast"),
    refused("grpc://[::1]:50051", "loopback"),
    refused("grpc://[fc00::1]:50051", "fc00::/7"),
    refused("grpc://[fd12:3456::1]:50051", "fc00::/7"),
    refused("grpc://[fe80::1]:50051", "fe80::/10"),
    refused("grpc://[::ffff:127.0.0.1]:50051", "loopback"),
    refused("grpc://[::ffff:10.1.2.3]:50051", "10.0.0.0/8"),
    refused("grpc://[::127.0.0.1]:50051", "loopback"),
    refused("grpc://2130706433:50051", "loopback"),  # 127.0.0.1 as one integer
    refused("grpc://0x7f000001:50051", "loopback"),
    refused("grpc://0177.0.0.1:50051", "loopback"),
    refused("grpc://127.1:50051", "loopback"),
    refused("grpc://0x7f.1:50051", "loopback"),
    refused("grpc://0xA9FEA9FE:80", "link-local"),  # 169.254.169.254
    refused("grpc://metadata.example.com:80", "resolves to 169.254.169.254"),
    refused("grpc://rebind.example.com:50051", "resolves to 10.0.0.7"),
    refused("grpc://v6-internal.example.com:50051", "fc00::/7"),
    refused("grpc://mapped.example.com:50051", "192.168.0.0/16"),
    refused("grpc://plugins.prod.svc:50051", "10.0.0.0/8"),
    # -- Rule: ALLOW_INTERNAL_NETWORK_ACCESS=true lifts the block, with a warning on each such command.
    ok("grpc://127.0.0.1:50051", DEV, INTERNAL_WARNING),
    ok("grpc://localhost:50051", DEV, INTERNAL_WARNING),
    ok("grpc://plugins.prod.svc:50051", DEV, INTERNAL_WARNING),
    ok("grpc://[::1]:50051", DEV, INTERNAL_WARNING),
    ok("grpc://plugins.example.com:50051", DEV),  # public targets carry no warning
    # -- Rule: PLUGIN_COMMAND_ALLOWLIST, when set, refuses what matches no entry; the page's examples.
    ok("file:///usr/local/plugins/guard", ALLOWLIST),
    ok("file:///usr/local/plugins/team-a/guard", ALLOWLIST),
    ok("grpc://10.1.2.3:50051", ALLOWLIST),  # grpc://10.0.0.0/8 permits an internal network
    ok("grpc://[::ffff:10.1.2.3]:50051", ALLOWLIST),
    ok("grpc://plugins.prod.svc:50051", ALLOWLIST),  # grpc://plugins.prod.svc/* : any port
    ok("grpc://plugins.prod.svc:9000", ALLOWLIST),
    ok("grpc://PLUGINS.PROD.SVC.:9000", ALLOWLIST),
    ok("grpc://edge.example.com:50051", ALLOWLIST, "grpc://edge.example.com:50051: edge.example.com"),
    ok("oci://registry.example.com/plugins/guard:v1", ALLOWLIST),
    ok("oci://registry.example.com/plugins/team/guard@sha256:" + "a" * 64, ALLOWLIST),
    refused("file:///usr/local/bin/guard", "matches no path glob in PLUGIN_COMMAND_ALLOWLIST", ALLOWLIST),
    refused("file:///usr/local/pluginsX/guard", "matches no path glob", ALLOWLIST),
    refused("grpc://11.0.0.1:50051", "matches no entry of PLUGIN_COMMAND_ALLOWLIST", ALLOWLIST),
    ok("grpc://other.prod.svc:50051", ALLOWLIST),  # not named, but 10.96.0.13 is inside 10.0.0.0/8
    refused("grpc://plugins.example.com:50051", "matches no entry", ALLOWLIST),
    refused("grpc://edge.example.com:50052", "matches no entry", ALLOWLIST),
    refused("grpc://unknown.example.com:50051", "matches no entry", ALLOWLIST),
    refused("oci://registry.example.com/other/guard:v1", "matches no entry", ALLOWLIST),
    refused("oci://evil.example.com/plugins/guard:v1", "matches no entry", ALLOWLIST),
    # -- Rule: PLUGIN_BLOCK_INTERNAL_URLS applies the internal rules to oci:// registries.
    ok("oci://127.0.0.1:5000/plugins/guard:v1"),  # off by default: local registries work
    ok("oci://registry.example.com/plugins/guard:v1", BLOCK_URLS),
    ok(
        "oci://registry.internal/plugins/guard:v1",
        Env(allowlist=ALLOWLIST.allowlist, block_internal_urls=True),
    ),
    refused(
        "oci://127.0.0.1:5000/plugins/guard:v1", "PLUGIN_BLOCK_INTERNAL_URLS=true refuses it", BLOCK_URLS
    ),
    refused("oci://localhost:5000/plugins/guard:v1", "internal network address", BLOCK_URLS),
    refused("oci://registry.internal/plugins/guard:v1", "192.168.10.5", BLOCK_URLS),
    refused("oci://[::1]:5000/plugins/guard:v1", "internal network address", BLOCK_URLS),
    refused("oci://[::1]/plugins/guard:v1", "internal network address", BLOCK_URLS),
    ok(
        "oci://registry.internal:5000/plugins/guard:v1",
        Env(allowlist="oci://registry.internal:5000/*", block_internal_urls=True),
    ),
    refused("oci://u:p@registry.example.com/plugins/guard:v1", "must not carry credentials"),
    refused("oci://registry.example.com/plugins/guard:v1?token=S3CRET", "unknown option 'token'"),
    ok("oci://REGISTRY.example.com/plugins/guard:v1", ALLOWLIST),  # host names have no case
    ok("grpc://[fe80::1%eth0]:50051", DEV, INTERNAL_WARNING),
    refused("grpc://[fe80::1%eth0]:50051", "link-local"),
    refused("oci://registry.example.com", "needs a registry and a repository"),
    refused("oci://registry.example.com/Plugins/Guard", "lowercase"),
]


def _row_id(row: Row) -> str:
    return repr(row.command[:50])


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
async def test_policy_table(row: Row) -> None:
    policy = row.env.policy()
    if row.refused is None:
        verdict = await policy.check(row.command, row.env.stage)
        assert len(row.warnings) == len(verdict.warnings), verdict.warnings
        for expected, actual in zip(row.warnings, verdict.warnings, strict=True):
            assert actual.startswith(expected), actual
    else:
        with pytest.raises(PolicyError) as info:
            await policy.check(row.command, row.env.stage)
        assert row.refused in str(info.value)
        assert "\n" not in str(info.value)
        message = str(info.value)
        assert "secret" not in message.lower() and "u:p@" not in message


def test_the_table_is_large_enough() -> None:
    assert len(ROWS) >= 80
    assert sum(r.refused is not None for r in ROWS) >= 40 and sum(r.refused is None for r in ROWS) >= 30
