"""oci:// references: a table of valid and invalid references, rule by rule, plus properties.

Each table groups one rule's cases so a reader sees the rule, its edges and its error together.
The grammar: `oci://registry[:port]/path/repo[:tag|@sha256:digest][?arch=os/arch&pubkey=NAME&auth=NAME]`.
"""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solstice.oci.errors import InvalidReferenceError
from solstice.oci.reference import DEFAULT_TAG, OciReference, parse_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4
OTHER_DIGEST = "sha256:" + "f" * 64

# --- valid references: expected fields --------------------------------------------------------

# (reference, expected fields); fields not named are None. One block per rule.
VALID: list[tuple[str, dict[str, Any]]] = [
    # Registry: a host name, with or without a port; IPv4 and bracketed IPv6 literals.
    ("oci://ghcr.io/org/p:v1", {"registry": "ghcr.io", "repository": "org/p", "tag": "v1"}),
    ("oci://localhost:5000/p:v1", {"registry": "localhost:5000", "repository": "p", "tag": "v1"}),
    ("oci://127.0.0.1:5000/p:v1", {"registry": "127.0.0.1:5000", "repository": "p", "tag": "v1"}),
    ("oci://[::1]:5000/p:v1", {"registry": "[::1]:5000", "repository": "p", "tag": "v1"}),
    (
        "oci://my-registry.example.com/p:v1",
        {"registry": "my-registry.example.com", "repository": "p", "tag": "v1"},
    ),
    ("oci://reg:1/p:v1", {"registry": "reg:1", "repository": "p", "tag": "v1"}),
    ("oci://reg:65535/p:v1", {"registry": "reg:65535", "repository": "p", "tag": "v1"}),
    # Repository: nested paths and the separators . _ __ - (several dashes) between components.
    ("oci://r.io/a/b/c/d:v1", {"registry": "r.io", "repository": "a/b/c/d", "tag": "v1"}),
    ("oci://r.io/my.plugin_x__y--z:v1", {"registry": "r.io", "repository": "my.plugin_x__y--z", "tag": "v1"}),
    ("oci://r.io/0/9:v1", {"registry": "r.io", "repository": "0/9", "tag": "v1"}),
    # Tag: absent means latest; the usual version spellings; up to 128 characters.
    ("oci://r.io/p", {"registry": "r.io", "repository": "p", "tag": DEFAULT_TAG}),
    ("oci://r.io/p:v1.2.3-rc.1", {"registry": "r.io", "repository": "p", "tag": "v1.2.3-rc.1"}),
    ("oci://r.io/p:_under", {"registry": "r.io", "repository": "p", "tag": "_under"}),
    ("oci://r.io/p:LATEST", {"registry": "r.io", "repository": "p", "tag": "LATEST"}),
    ("oci://r.io/p:" + "t" * 128, {"registry": "r.io", "repository": "p", "tag": "t" * 128}),
    # A port is not a tag: the tag is only looked for in the last path component.
    ("oci://r.io:5000/p", {"registry": "r.io:5000", "repository": "p", "tag": DEFAULT_TAG}),
    # Digest: alone (no tag is invented), or with a tag it wins (the tag is kept for display).
    (f"oci://r.io/p@{DIGEST}", {"registry": "r.io", "repository": "p", "digest": DIGEST}),
    (f"oci://r.io/p:v1@{DIGEST}", {"registry": "r.io", "repository": "p", "tag": "v1", "digest": DIGEST}),
    (f"oci://r.io:5000/a/p@{DIGEST}", {"registry": "r.io:5000", "repository": "a/p", "digest": DIGEST}),
    # Options: each alone, all together in any order, with digest or tag, platform variants.
    (
        "oci://r.io/p:v1?arch=linux/arm64",
        {"registry": "r.io", "repository": "p", "tag": "v1", "platform": "linux/arm64"},
    ),
    (
        "oci://r.io/p:v1?arch=linux/arm/v7",
        {"registry": "r.io", "repository": "p", "tag": "v1", "platform": "linux/arm/v7"},
    ),
    ("oci://r.io/p:v1?pubkey=PROD", {"registry": "r.io", "repository": "p", "tag": "v1", "pubkey": "PROD"}),
    ("oci://r.io/p:v1?pubkey=1", {"registry": "r.io", "repository": "p", "tag": "v1", "pubkey": "1"}),
    ("oci://r.io/p:v1?auth=my_reg", {"registry": "r.io", "repository": "p", "tag": "v1", "auth": "my_reg"}),
    (
        "oci://r.io/p?auth=A&pubkey=B&arch=darwin/amd64",
        {
            "registry": "r.io",
            "repository": "p",
            "tag": DEFAULT_TAG,
            "platform": "darwin/amd64",
            "pubkey": "B",
            "auth": "A",
        },
    ),
    (
        f"oci://r.io/p@{DIGEST}?arch=linux/amd64",
        {"registry": "r.io", "repository": "p", "digest": DIGEST, "platform": "linux/amd64"},
    ),
    # An empty query is no options.
    ("oci://r.io/p:v1?", {"registry": "r.io", "repository": "p", "tag": "v1"}),
    # The scheme is optional (the API's oci_reference field has none).
    ("r.io/p:v1", {"registry": "r.io", "repository": "p", "tag": "v1"}),
    (
        "registry.example.com/plugins/my-plugin:v1.0.0",
        {"registry": "registry.example.com", "repository": "plugins/my-plugin", "tag": "v1.0.0"},
    ),
]


@pytest.mark.parametrize(("raw", "fields"), VALID, ids=[raw for raw, _ in VALID])
def test_valid_reference_fields(raw: str, fields: dict[str, Any]) -> None:
    expected = {"tag": None, "digest": None, "platform": None, "pubkey": None, "auth": None, **fields}
    ref = parse_reference(raw)
    assert {name: getattr(ref, name) for name in expected} == expected


# --- invalid references: the message names the bad value and says what to do ------------------

# (reference, fragments the one-sentence message must contain). One block per rule.
INVALID: list[tuple[str, list[str]]] = [
    # Structure: a registry and a repository are both needed.
    ("oci://", ["needs a registry and a repository", "oci://registry.example.com/"]),
    ("oci://r.io", ["'oci://r.io'", "needs a registry and a repository"]),
    ("oci://r.io/", ["'oci://r.io/'", "needs a registry and a repository"]),
    ("my-plugin:v1", ["needs a registry and a repository"]),
    # Registry: a host[:port]; labels cannot start or end with '-'; no empty host; no scheme.
    ("oci:///p:v1", ["registry ''", "not a valid host[:port]"]),
    ("oci://-bad.io/p", ["registry '-bad.io'", "not a valid host[:port]"]),
    ("oci://bad-.io/p", ["registry 'bad-.io'", "not a valid host[:port]"]),
    ("oci://r..io/p", ["registry 'r..io'", "not a valid host[:port]"]),
    ("oci://r_io/p", ["registry 'r_io'"]),
    ("oci://r.io:/p", ["registry 'r.io:'"]),
    ("oci://r.io:port/p", ["registry 'r.io:port'"]),
    ("oci://r.io:123456/p", ["registry 'r.io:123456'"]),
    ("docker://r.io/p", ["registry 'docker:'"]),
    # Port: 1..65535.
    ("oci://r.io:0/p", ["port '0'", "1 to 65535"]),
    ("oci://r.io:65536/p", ["port '65536'", "1 to 65535"]),
    ("oci://[::1]:99999/p", ["port '99999'", "1 to 65535"]),
    # Repository: lowercase components, separators only between alphanumerics, no empty component.
    ("oci://r.io/Plugins/p", ["repository 'Plugins/p'", "lowercase"]),
    ("oci://r.io/a//b", ["repository 'a//b'"]),
    ("oci://r.io/a/", ["repository 'a/'"]),
    ("oci://r.io/-a", ["repository '-a'"]),
    ("oci://r.io/a.", ["repository 'a.'"]),
    ("oci://r.io/a..b", ["repository 'a..b'"]),
    ("oci://r.io/a___b", ["repository 'a___b'"]),
    ("oci://r.io/a b", ["repository 'a b'"]),
    ("oci://r.io/a:b:c", ["repository 'a:b'"]),
    ("oci://r.io/p\n", ["repository 'p\\n'"]),
    # Tag: not empty, not starting with '.' or '-', at most 128 of [A-Za-z0-9_.-].
    ("oci://r.io/p:", ["tag ''", "up to 128"]),
    ("oci://r.io/p:.v1", ["tag '.v1'", "not starting with '.' or '-'"]),
    ("oci://r.io/p:-v1", ["tag '-v1'"]),
    ("oci://r.io/p:v1+build", ["tag 'v1+build'"]),
    ("oci://r.io/p:" + "t" * 129, ["tag 'ttt", "up to 128"]),
    ("oci://r.io/p:v1#frag", ["tag 'v1#frag'"]),
    # Digest: sha256 and 64 lowercase hex digits, nothing else.
    ("oci://r.io/p@sha256:abc", ["digest 'sha256:abc'", "64 lowercase hex digits"]),
    ("oci://r.io/p@" + DIGEST.upper(), ["digest 'SHA256:"]),
    ("oci://r.io/p@sha256:" + "A" * 64, ["digest 'sha256:AAAA"]),
    ("oci://r.io/p@sha512:" + "a" * 128, ["digest 'sha512:"]),
    (f"oci://r.io/p@{DIGEST}@{DIGEST}", ["digest '"]),
    # Options: only arch, pubkey and auth; arch is os/arch[/variant]; names are [A-Za-z0-9_]+.
    (
        "oci://r.io/p?platform=linux/amd64",
        ["unknown option 'platform'", "arch=os/arch, pubkey=NAME and auth=NAME"],
    ),
    ("oci://r.io/p?arch=amd64", ["arch='amd64'", "os/arch, e.g. linux/arm64"]),
    ("oci://r.io/p?arch=", ["arch=''"]),
    ("oci://r.io/p?arch", ["arch=''"]),
    ("oci://r.io/p?arch=Linux/AMD64", ["arch='Linux/AMD64'"]),
    ("oci://r.io/p?pubkey=", ["pubkey=''", "e.g. pubkey=PROD"]),
    ("oci://r.io/p?pubkey=a-b", ["pubkey='a-b'"]),
    ("oci://r.io/p?auth=ghcr.io", ["auth='ghcr.io'", "e.g. auth=PROD"]),
    ("oci://r.io/p?auth=a%2Fb", ["auth='a/b'"]),
]


@pytest.mark.parametrize(("raw", "fragments"), INVALID, ids=[raw[:60] for raw, _ in INVALID])
def test_invalid_reference_message(raw: str, fragments: list[str]) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(raw)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    # One sentence: a single clause ending, no line breaks.
    assert "\n" not in message.replace("\\n", "")


def test_invalid_reference_error_is_a_value_error() -> None:
    # Callers that only know ValueError (pydantic validators) still catch it.
    with pytest.raises(ValueError):
        parse_reference("oci://r.io/P")


# --- credentials in a reference: refused, never echoed ---------------------------------------

# Every shape of `user:password@` that a URL parser, a typo or a password's own characters make;
# the secret must not show up in the message whichever rule would otherwise have rejected it.
CREDENTIALS = [
    "oci://bob:s3cret@r.io/p:v1",
    "bob:s3cret@r.io/p:v1",
    "oci://bob:s3cret@r.io:5000/p",
    "oci://bob:s3cret@r.io",  # no repository: would be a "needs a repository" error
    "oci://bob:s3cret@r.io/P",  # bad repository
    "oci://bob:s3cret@r.io/p?bogus=1",  # unknown option
    "oci://bob:s3cret@r.io/p?arch=nope",  # bad option value
    "oci://bob:s3/cret@r.io/p",  # a '/' in the password
    "oci://bob:s3?cret@r.io/p",  # a '?' in the password
    "oci://bob:s3@cret@r.io/p",  # an '@' in the password
    f"oci://bob:s3cret@r.io/p@{DIGEST}",  # with a digest as well
    "oci://s3cret@r.io/p",  # a token alone as the user
    # A '/' in the password and no repository: indistinguishable from a bad digest, so the
    # "@ only before a digest" refusal applies, which echoes nothing either.
    "oci://bob:s3/cret@r.io",
    "oci://bob:12/s3cret@r.io:5000",
    "oci://bob:s3/c?ret@r.io",
]


@pytest.mark.parametrize("raw", CREDENTIALS)
def test_credentials_in_reference_are_refused_without_echo(raw: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(raw)
    message = str(caught.value)
    assert "must not carry credentials" in message
    assert "OCI_PLUGINS_REGISTRY_" in message  # says what to do instead
    for part in ("s3cret", "cret", "bob"):
        assert part not in message


@pytest.mark.parametrize(
    "raw", ["oci://r.io/p@", "oci://r.io/p@latest", "oci://r.io/p:v1@v2", "oci://r.io/p?auth=a@b"]
)
def test_an_at_not_before_a_digest_is_refused_without_echo(raw: str) -> None:
    # `@latest` is a typo, but the same shape is `user:pa/ss@host`: the message says both and
    # quotes nothing after the '@'.
    with pytest.raises(InvalidReferenceError, match="'@' only before a digest") as caught:
        parse_reference(raw)
    assert "must not carry credentials" in str(caught.value)
    assert "r.io" not in str(caught.value)  # nothing of the reference is quoted


# --- derived values ---------------------------------------------------------------------------


def test_ref_is_the_digest_when_there_is_one() -> None:
    assert parse_reference(f"oci://r.io/p:v1@{DIGEST}").ref == DIGEST
    assert parse_reference("oci://r.io/p:v1").ref == "v1"
    assert parse_reference("oci://r.io/p").ref == DEFAULT_TAG
    # A hand-built reference with neither still asks for latest.
    assert OciReference("r.io", "p").ref == DEFAULT_TAG


def test_name_and_image_leave_out_scheme_and_options() -> None:
    ref = parse_reference(f"oci://r.io:5000/a/p:v1@{DIGEST}?arch=linux/amd64&auth=X")
    assert ref.name == "r.io:5000/a/p"
    assert ref.image == f"r.io:5000/a/p:v1@{DIGEST}"


def test_pinned_keeps_everything_but_the_digest() -> None:
    ref = parse_reference("oci://r.io/p:v1?arch=linux/arm64&pubkey=K&auth=A")
    pinned = ref.pinned(OTHER_DIGEST)
    assert pinned.digest == OTHER_DIGEST
    assert pinned.ref == OTHER_DIGEST
    assert (pinned.registry, pinned.repository, pinned.tag) == ("r.io", "p", "v1")
    assert (pinned.platform, pinned.pubkey, pinned.auth) == ("linux/arm64", "K", "A")
    assert ref.digest is None  # frozen: the original is untouched


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("r.io/p", "oci://r.io/p:latest"),
        ("oci://r.io/p:v1", "oci://r.io/p:v1"),
        (f"oci://r.io/p@{DIGEST}", f"oci://r.io/p@{DIGEST}"),
        # Options come out in a fixed order whatever order they went in.
        (
            "oci://r.io/p:v1?auth=A&arch=linux/amd64&pubkey=K",
            "oci://r.io/p:v1?arch=linux/amd64&pubkey=K&auth=A",
        ),
        ("oci://r.io/p:v1?", "oci://r.io/p:v1"),
    ],
)
def test_str_is_the_canonical_spelling(raw: str, text: str) -> None:
    assert str(parse_reference(raw)) == text


# --- properties -------------------------------------------------------------------------------

_alnum_lower = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_separator = st.sampled_from([".", "_", "__", "-", "--"])


@st.composite
def _components(draw: st.DrawFn) -> str:
    """A repository component: alphanumeric runs joined by valid separators."""
    runs = draw(st.lists(_alnum_lower, min_size=1, max_size=3))
    text = runs[0]
    for run in runs[1:]:
        text += draw(_separator) + run
    return text


_label = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True)
_hosts = st.builds(lambda labels: ".".join(labels), st.lists(_label, min_size=1, max_size=4))
_registries = st.one_of(
    _hosts,
    st.builds(lambda host, port: f"{host}:{port}", _hosts, st.integers(1, 65535)),
    st.builds(lambda port: f"[::1]:{port}", st.integers(1, 65535)),
)
_repositories = st.builds("/".join, st.lists(_components(), min_size=1, max_size=4))
_tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True)
_digests = st.builds(lambda hex_: "sha256:" + hex_, st.text("0123456789abcdef", min_size=64, max_size=64))
_names = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=12)
_platforms = st.sampled_from(["linux/amd64", "linux/arm64", "linux/arm/v7", "darwin/arm64", "windows/amd64"])


@st.composite
def _references(draw: st.DrawFn) -> tuple[str, dict[str, str | None]]:
    """A valid reference built from valid parts, and the fields it must parse to."""
    fields: dict[str, str | None] = {
        "registry": draw(_registries),
        "repository": draw(_repositories),
        "tag": draw(st.none() | _tags),
        "digest": draw(st.none() | _digests),
        "platform": draw(st.none() | _platforms),
        "pubkey": draw(st.none() | _names),
        "auth": draw(st.none() | _names),
    }
    text = f"{fields['registry']}/{fields['repository']}"
    text += f":{fields['tag']}" if fields["tag"] else ""
    text += f"@{fields['digest']}" if fields["digest"] else ""
    options = [
        (key, fields[name]) for key, name in (("arch", "platform"), ("pubkey", "pubkey"), ("auth", "auth"))
    ]
    query = [f"{key}={value}" for key, value in options if value]
    query = draw(st.permutations(query))
    text += "?" + "&".join(query) if query else ""
    if draw(st.booleans()):
        text = "oci://" + text
    if not fields["tag"] and not fields["digest"]:
        fields["tag"] = DEFAULT_TAG
    return text, fields


@settings(max_examples=300, deadline=None)
@given(_references())
def test_generated_valid_references_parse_to_their_parts(case: tuple[str, dict[str, str | None]]) -> None:
    text, fields = case
    ref = parse_reference(text)
    assert {name: getattr(ref, name) for name in fields} == fields


@settings(max_examples=300, deadline=None)
@given(_references())
def test_str_round_trips(case: tuple[str, dict[str, str | None]]) -> None:
    ref = parse_reference(case[0])
    assert parse_reference(str(ref)) == ref
    # And the canonical spelling is a fixed point.
    assert str(parse_reference(str(ref))) == str(ref)


# Text biased towards the characters the grammar cares about, so examples get deep into parsing.
_grammar_text = st.lists(
    st.sampled_from([*"oci:/@?&=.-_[]aZ09sha256f", "oci://", "sha256:", "arch=", "%2F", "\x00", "é"]),
    max_size=30,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=60), _grammar_text))
def test_parse_raises_only_invalid_reference_error(raw: str) -> None:
    try:
        ref = parse_reference(raw)
    except InvalidReferenceError:
        return
    # Whatever was accepted is well-formed: its canonical text parses to the same reference.
    assert parse_reference(str(ref)) == ref


@settings(max_examples=200, deadline=None)
@given(
    user=st.text(string.ascii_letters + string.digits, min_size=1, max_size=8),
    # '!' marks both ends of the secret and occurs in no message, so an echo of either half of
    # a password split at its '/', '?' or '@' shows up as a '!' in the message.
    secret=st.text(string.ascii_letters + string.digits + "/?@:#", max_size=14).map(lambda s: f"!{s}!"),
    tail=st.sampled_from(["r.io/p:v1", "r.io", "r.io:5000", "r.io/P", "r.io/p?x=1", f"r.io/p@{DIGEST}"]),
)
def test_credentials_are_never_echoed(user: str, secret: str, tail: str) -> None:
    raw = f"oci://{user}:{secret}@{tail}"
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(raw)
    assert "!" not in str(caught.value)
