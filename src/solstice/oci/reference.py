"""oci:// references: registry, repository, tag or digest, and the options after `?`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from solstice.oci.errors import InvalidReferenceError

DEFAULT_TAG = "latest"
OPTIONS = ("arch", "pubkey", "auth")

_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
# What a digest starts with; anything else after an `@` may be a password.
_ALGORITHMS = ("sha256:", "sha384:", "sha512:")
_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?")
_NAME = re.compile(r"[A-Za-z0-9_]+")
EXAMPLE = "oci://registry.example.com/plugins/my-plugin:v1.0.0"


@dataclass(frozen=True)
class OciReference:
    """A parsed oci:// reference; a digest, when present, is what gets pulled."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    platform: str | None = None
    pubkey: str | None = None
    auth: str | None = None

    @property
    def name(self) -> str:
        """registry/repository, as cosign's docker-reference and for display."""
        return f"{self.registry}/{self.repository}"

    @property
    def ref(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def image(self) -> str:
        """registry/repository[:tag][@digest], without the scheme and options."""
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def pinned(self, digest: str) -> OciReference:
        """The same reference, resolved to `digest`."""
        return OciReference(
            self.registry, self.repository, self.tag, digest, self.platform, self.pubkey, self.auth
        )

    def __str__(self) -> str:
        options = [(key, getattr(self, "platform" if key == "arch" else key)) for key in OPTIONS]
        query = "&".join(f"{key}={value}" for key, value in options if value)
        return f"oci://{self.image}" + (f"?{query}" if query else "")


def parse_reference(raw: str) -> OciReference:
    """Parse `oci://registry[:port]/repo[:tag][@sha256:…][?arch=&pubkey=&auth=]` (scheme optional)."""
    text = raw.removeprefix("oci://")
    # Checked before any message quotes `raw`: from here on it holds no secret.
    _check_userinfo(text)
    text, _, query = text.partition("?")
    options = _parse_options(raw, query)
    registry, slash, rest = text.partition("/")
    if not slash or not rest:
        raise InvalidReferenceError(
            f"OCI reference {raw!r} needs a registry and a repository, as in {EXAMPLE}"
        )
    if not _HOST.fullmatch(registry):
        raise InvalidReferenceError(
            f"registry {registry!r} in {raw!r} is not a valid host[:port]; write it as in {EXAMPLE}"
        )
    _check_port(raw, registry)
    rest, at, digest = rest.partition("@")
    if at and not DIGEST.fullmatch(digest):
        raise InvalidReferenceError(
            f"digest {digest!r} in {raw!r} is not sha256: followed by 64 lowercase hex digits"
        )
    repository, tag = _split_tag(rest)
    for component in repository.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise InvalidReferenceError(
                f"repository {repository!r} in {raw!r} is invalid: use lowercase letters, digits "
                "and separators (. _ -) between slashes"
            )
    if tag is not None and not TAG.fullmatch(tag):
        raise InvalidReferenceError(
            f"tag {tag!r} in {raw!r} is invalid: use up to 128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'"
        )
    if tag is None and not at:
        tag = DEFAULT_TAG
    return OciReference(registry, repository, tag, digest or None, **options)


def _check_userinfo(text: str) -> None:
    """Refuse `user[:password]@`, even when the password holds '/', '?' or '@', without echoing it.

    The only `@` of a valid reference follows the repository (a slash before it) and starts a
    digest (no slash after it, up to the query).
    """
    before, at, after = text.partition("@")
    if at and ("/" not in before or "/" in after.partition("?")[0]):
        raise InvalidReferenceError(
            # The reference itself is not echoed: it holds a secret.
            "an oci:// reference must not carry credentials; remove the user:password@ part and "
            "set OCI_PLUGINS_REGISTRY_<HOST>_* variables instead"
        )
    if at and ("?" in before or not after.lower().startswith(_ALGORITHMS)):
        # `user:pa/ss@host` and `user:pa/s?s@host` look like this too, so nothing is echoed.
        raise InvalidReferenceError(
            "an oci:// reference has '@' only before a digest (@sha256: and 64 hex digits) and "
            "must not carry credentials; remove the user:password@ part and set "
            "OCI_PLUGINS_REGISTRY_<HOST>_* variables instead"
        )


def _split_tag(rest: str) -> tuple[str, str | None]:
    last = rest.rsplit("/", 1)[-1]
    if ":" not in last:
        return rest, None
    repository, _, tag = rest.rpartition(":")
    return repository, tag


def _check_port(raw: str, registry: str) -> None:
    host_end = registry.rfind("]") + 1
    _, colon, port = registry[host_end:].rpartition(":")
    if colon and not 0 < int(port) < 65536:
        raise InvalidReferenceError(f"port {port!r} in {raw!r} is not a number from 1 to 65535")


def _parse_options(raw: str, query: str) -> dict[str, str | None]:
    options: dict[str, str | None] = {"platform": None, "pubkey": None, "auth": None}
    if not query:
        return options
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in OPTIONS:
            raise InvalidReferenceError(
                # The query is not echoed: an unknown option may well be a token pasted by mistake.
                f"unknown option {key!r} in an oci:// reference; the options are arch=os/arch, "
                "pubkey=NAME and auth=NAME"
            )
        if key == "arch":
            if not _PLATFORM.fullmatch(value):
                raise InvalidReferenceError(
                    f"arch={value!r} in {raw!r} is not a platform; write it as os/arch, e.g. linux/arm64"
                )
            options["platform"] = value
        elif not _NAME.fullmatch(value):
            raise InvalidReferenceError(
                f"{key}={value!r} in {raw!r} must be a name of letters, digits and '_', e.g. {key}=PROD"
            )
        else:
            options[key] = value
    return options
