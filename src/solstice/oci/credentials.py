"""Registry credentials from OCI_PLUGINS_REGISTRY_<NAME>_<FIELD> variables or Docker's config.json."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from solstice.oci.errors import RegistryAuthError

PREFIX = "OCI_PLUGINS_REGISTRY_"
DEFAULT_ENTITLEMENT_USERNAME = "token"
# Which registries a set belongs to; required for a set named by ?auth= rather than by its host.
HOST_FIELD = "HOST"
FIELDS = (
    "ENTITLEMENT", "ENTITLEMENTENV", "ENTITLEMENTUSERNAME", "USERNAME", "PASSWORD", "PASSWORDENV",
    "TOKEN", "TOKENENV", HOST_FIELD,
)  # fmt: skip

Kind = Literal["entitlement", "token", "basic"]
# How environment variables are conventionally named; only such a name is quoted in errors.
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


@dataclass(frozen=True)
class Credential:
    """How to authenticate to one registry; `secret` never appears in repr or messages."""

    kind: Kind
    username: str = ""
    secret: str = field(default="", repr=False)
    source: str = ""

    def basic_header(self) -> str:
        """The Authorization value for HTTP Basic with these credentials."""
        pair = f"{self.username}:{self.secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def direct_header(self) -> str | None:
        """The Authorization sent on every request without a challenge (entitlement, token)."""
        if self.kind == "entitlement":
            return self.basic_header()
        if self.kind == "token":
            return f"Bearer {self.secret}"
        return None


def env_names(host: str) -> list[str]:
    """The <REGISTRY_NAME> spellings tried for `host`: dots as underscores, then every other symbol."""
    dotted = host.upper().replace(".", "_")
    names = [dotted] if re.fullmatch(r"[A-Z0-9_]+", dotted) else []
    sanitized = re.sub(r"[^A-Z0-9]", "_", host.upper())
    if sanitized not in names:
        names.append(sanitized)
    return names


def from_environment(
    host: str, environ: Mapping[str, str], auth_name: str | None = None
) -> Credential | None:
    """The credential the environment defines for `host` (or for `?auth=NAME`), if any.

    A set belongs to the registries in its _HOST variable, else to the host it is named after:
    naming it for another registry is refused before anything is sent.
    """
    for name in [auth_name.upper()] if auth_name else env_names(host):
        values = {f: environ[f"{PREFIX}{name}_{f}"] for f in FIELDS if f"{PREFIX}{name}_{f}" in environ}
        if values:
            _check_host(name, host, environ)
            return _credential(name, values, environ)
    if auth_name:
        raise RegistryAuthError(
            f"?auth={auth_name} names no credentials: set {PREFIX}{auth_name.upper()}_USERNAME and "
            f"_PASSWORD, _TOKEN or _ENTITLEMENT"
        )
    return None


def hosts_of(name: str, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The registries (host[:port], lower case) that OCI_PLUGINS_REGISTRY_<NAME>_HOST lists."""
    text = environ.get(f"{PREFIX}{name}_{HOST_FIELD}", "")
    return tuple(item.strip().lower() for item in text.split(",") if item.strip())


def _check_host(name: str, host: str, environ: Mapping[str, str]) -> None:
    """Refuse to use set `name` for `host` unless it lists that host or is named after it."""
    hosts = hosts_of(name, environ)
    if host.lower() in hosts or (not hosts and name in env_names(host)):
        return
    variable = f"{PREFIX}{name}_{HOST_FIELD}"
    if hosts:
        raise RegistryAuthError(
            f"the credentials {PREFIX}{name}_* belong to {', '.join(hosts)} ({variable}), not to "
            f"registry {host}, so they were not sent; use ?auth= only with its own registry or add "
            f"{host} to {variable}"
        )
    raise RegistryAuthError(
        f"the credentials {PREFIX}{name}_* name no registry, so they were not sent to {host}; set "
        f"{variable}={host} if they belong to it"
    )


def _credential(name: str, values: dict[str, str], environ: Mapping[str, str]) -> Credential:
    source = f"{PREFIX}{name}_*"

    def value(field_name: str) -> str | None:
        if values.get(field_name):
            return values[field_name]
        indirect = values.get(f"{field_name}ENV")
        if not indirect:
            return None
        if not environ.get(indirect):
            # A value that does not look like a variable name may be the secret itself, put in
            # the wrong variable: it is not echoed.
            target = f"the variable {indirect}" if _ENV_NAME.fullmatch(indirect) else "a variable"
            raise RegistryAuthError(
                f"{PREFIX}{name}_{field_name}ENV names {target}, which is not set or "
                "empty; set it or remove the reference"
            )
        return environ[indirect]

    if entitlement := value("ENTITLEMENT"):
        return Credential(
            "entitlement",
            values.get("ENTITLEMENTUSERNAME") or DEFAULT_ENTITLEMENT_USERNAME,
            entitlement,
            source,
        )
    if token := value("TOKEN"):
        return Credential("token", "", token, source)
    username, password = values.get("USERNAME"), value("PASSWORD")
    if username and password:
        return Credential("basic", username, password, source)
    raise RegistryAuthError(
        f"{source} is incomplete: set _USERNAME with _PASSWORD or _PASSWORDENV, _TOKEN or "
        "_TOKENENV, or _ENTITLEMENT"
    )


def docker_config_path(environ: Mapping[str, str]) -> Path | None:
    """Docker's config.json: $DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"]) / "config.json"
    if environ.get("HOME"):
        return Path(environ["HOME"]) / ".docker" / "config.json"
    return None


def from_docker_config(host: str, environ: Mapping[str, str]) -> Credential | None:
    """The `auths` entry of Docker's config.json for `host`, as Basic credentials."""
    path = docker_config_path(environ)
    if path is None or not path.is_file():
        return None
    try:
        auths = json.loads(path.read_text()).get("auths") or {}
        if not isinstance(auths, dict):
            raise ValueError("auths is not an object")
    except (OSError, ValueError, AttributeError):
        raise RegistryAuthError(f"{path} is not valid JSON with an auths object; fix or remove it") from None
    for key, entry in auths.items():
        if _registry_of(key) != host or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, TypeError):
                raise RegistryAuthError(
                    f"the auths entry for {key!r} in {path} is not base64 of user:password; fix it"
                ) from None
        else:
            username, password = entry.get("username", ""), entry.get("password", "")
        if username and password:
            return Credential("basic", username, password, str(path))
    return None


def _registry_of(key: str) -> str:
    """`https://host/v1/` and `host` both name `host`."""
    return key.split("://", 1)[-1].split("/", 1)[0]


def resolve(host: str, environ: Mapping[str, str], auth_name: str | None = None) -> Credential | None:
    """Environment variables first, then Docker's config.json; None means anonymous."""
    return from_environment(host, environ, auth_name) or from_docker_config(host, environ)
