"""The environment variables Solstice treats as secret: never handed to a plugin process.

One list, used by the API (a plugin's `env`), the edge's plugins.yaml and the host when it builds
a plugin's environment (so a row stored before a rule was added is covered too).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import structlog

log = structlog.get_logger("solstice.security")

# Prefix: why. SOLSTICE_* covers the admin, edge and CLI tokens, the database URL and the secret
# keys; OCI_PLUGINS_REGISTRY_* holds registry credentials.
SECRET_PREFIXES: tuple[tuple[str, str], ...] = (
    ("SOLSTICE_", "one of Solstice's own settings (tokens, database URL, secret keys)"),
    ("OCI_PLUGINS_REGISTRY_", "a registry credential (OCI_PLUGINS_REGISTRY_*)"),
)
SECRET_NAMES: dict[str, str] = {
    "COSIGN_PASSWORD": "the password of a cosign signing key",
    "DOCKER_CONFIG": "where registry credentials are read from (Docker's config.json)",
}
# OCI_PLUGINS_REGISTRY_<NAME>_<FIELD>ENV names another variable that holds the secret.
_INDIRECT_SUFFIXES = ("_TOKENENV", "_PASSWORDENV", "_ENTITLEMENTENV")


def secret_reason(
    name: str, environ: Mapping[str, str] | None = None, also: Collection[str] = ()
) -> str | None:
    """Why `name` is a secret Solstice never passes to a plugin, or None.

    `environ` adds the variables that registry credentials name indirectly (`…_PASSWORDENV=X`);
    `also` adds names the caller uses for secrets (an edge file's api_key_env and keys_env).
    """
    upper = name.upper()
    for prefix, why in SECRET_PREFIXES:
        if upper.startswith(prefix):
            return why
    if upper in SECRET_NAMES:
        return SECRET_NAMES[upper]
    if name in also:
        return "a variable this configuration reads a secret from"
    for variable, value in (environ or {}).items():
        indirect = variable.startswith("OCI_PLUGINS_REGISTRY_") and variable.endswith(_INDIRECT_SUFFIXES)
        if indirect and value == name:
            return f"the variable {variable} reads a registry credential from"
    return None


def refusal(name: str, environ: Mapping[str, str] | None = None, also: Collection[str] = ()) -> str | None:
    """The one-sentence refusal of an `env` entry naming a secret, or None when it may be passed."""
    why = secret_reason(name, environ, also)
    if why is None:
        return None
    return f"env entry {name!r} is {why} and is never passed on to a plugin; remove it from env"


def passable(names: Iterable[str], environ: Mapping[str, str], plugin: str) -> list[str]:
    """The names a plugin may receive; a secret among them (a row stored earlier) is dropped and logged."""
    kept = []
    for name in names:
        why = secret_reason(name, environ)
        if why is None:
            kept.append(name)
        else:
            log.warning("a plugin's env names a secret, which is not passed on", plugin=plugin, variable=name)
    return kept
