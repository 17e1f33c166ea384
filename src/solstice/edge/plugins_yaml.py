"""`solstice edge --config plugins.yaml`: LLMs, apps and plugins from a file, watched for changes.

The file is turned into the same snapshot a control plane sends, so both sources share the
reconciler. Secrets come from the environment (`api_key_env`, `keys_env`), not from the file.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from solstice.appkeys import hash_key
from solstice.edge.source import Apply, SyncStatus
from solstice.gateway import mock
from solstice.hooks import AGENT_HOOK, FailurePolicy, PluginHook
from solstice.safejson import MAX_DEPTH, JSONObject
from solstice.scopes import Scope
from solstice.security.upstreams import UpstreamRefused, split_upstream_url
from solstice.security.variables import refusal as secret_refusal
from solstice.snapshot import SLUG_PATTERN, AppEntry, LLMEntry, PluginEntry, Snapshot, new_snapshot

log = structlog.get_logger("solstice.edge")

POLL_S = 1.0
# A few lines of nested YAML aliases can stand for billions of values ("billion laughs"): the
# expanded size is counted on the parsed nodes before any value is built.
MAX_YAML_VALUES = 100_000


class ConfigFileError(ValueError):
    """A config file that cannot be used; the message names the file and the bad field."""


class _Model(BaseModel):
    # As the API: values are never coerced (`timeout_ms: true` is not 1 ms).
    model_config = ConfigDict(extra="forbid", strict=True)


class FilePlugin(_Model):
    slug: str = Field(pattern=SLUG_PATTERN)
    command: str = Field(max_length=2048)
    hook_types: list[PluginHook] = Field(min_length=1)
    config: JSONObject = Field(default_factory=dict)
    timeout_ms: int = Field(1000, ge=1, le=600_000)
    failure_policy: FailurePolicy | None = None
    env: list[str] = Field(default_factory=list)
    checksum: str | None = None
    is_global: bool = Field(False, alias="global")
    is_active: bool = True
    # Host service API scopes the operator approves by writing them here.
    scopes: list[Scope] = Field(default_factory=list)


class FileChainEntry(_Model):
    plugin: str
    config_override: JSONObject = Field(default_factory=dict)
    timeout_ms: int | None = Field(None, ge=1, le=600_000)
    failure_policy: FailurePolicy | None = None


class FileLLM(_Model):
    slug: str = Field(pattern=SLUG_PATTERN)
    name: str = ""
    vendor: Literal["openai", "mock"] = "openai"
    upstream_url: str = ""
    api_key_env: str = ""
    is_active: bool = True
    options: JSONObject = Field(default_factory=dict)
    plugins: list[FileChainEntry] = Field(default_factory=list)

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, Any]) -> dict[str, Any]:
        return dict(mock.check_options(value))


class FileApp(_Model):
    name: str = Field(min_length=1)
    llms: list[str] = Field(default_factory=list)
    # Agent plugins (slugs) the app may chat with.
    agents: list[str] = Field(default_factory=list)
    keys_env: list[str] = Field(default_factory=list)
    is_active: bool = True


class ConfigFile(_Model):
    plugins: list[FilePlugin] = Field(default_factory=list)
    llms: list[FileLLM] = Field(default_factory=list)
    apps: list[FileApp] = Field(default_factory=list)


def _secret(environ: Mapping[str, str], name: str, what: str) -> str:
    if name not in environ:
        raise ConfigFileError(
            f"{what} names the variable {name}, which is not set; set it or remove the reference"
        )
    return environ[name]


def _check_secrets(path: Path, parsed: ConfigFile, environ: Mapping[str, str]) -> None:
    """No plugin env names a secret (Solstice's, a registry's, or one this file reads keys from),
    and no upstream_url carries credentials."""
    read_here = {llm.api_key_env for llm in parsed.llms if llm.api_key_env}
    read_here |= {name for app in parsed.apps for name in app.keys_env}
    for plugin in parsed.plugins:
        for name in plugin.env:
            refused = secret_refusal(name, environ, read_here)
            if refused:
                raise ConfigFileError(f"{path}: plugin {plugin.slug}: {refused}")
    for llm in parsed.llms:
        if llm.upstream_url:
            try:
                split_upstream_url(llm.upstream_url)
            except UpstreamRefused as exc:
                raise ConfigFileError(f"{path}: llm {llm.slug}: {exc}") from None


class _TooLarge(Exception):
    pass


def _expanded_values(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values `node` stands for once its aliases are written out (memoised per node)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise _TooLarge("an alias refers to a value that contains it")
    open_nodes.add(key)
    if isinstance(node, yaml.SequenceNode):
        children: list[yaml.Node] = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    total = 1 + sum(_expanded_values(child, sizes, open_nodes) for child in children)
    open_nodes.discard(key)
    if total > MAX_YAML_VALUES:
        raise _TooLarge(f"its aliases expand to more than {MAX_YAML_VALUES:,} values")
    sizes[key] = total
    return total


def _load_yaml(text: str) -> Any:
    """safe_load, refusing a document whose aliases expand past MAX_YAML_VALUES before building it."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_values(node, {}, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def snapshot_from_file(path: Path, environ: Mapping[str, str]) -> Snapshot:
    """Read and check the file; the snapshot it describes (ConfigFileError says what is wrong)."""
    try:
        document = _load_yaml(path.read_text()) or {}
    except _TooLarge as exc:
        raise ConfigFileError(f"{path} is refused: {exc}; write the values out or shorten the file") from None
    except OSError as exc:
        raise ConfigFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigFileError(
            f"{path} is nested too deeply to read; values may nest at most {MAX_DEPTH} levels"
        ) from None
    try:
        parsed = ConfigFile.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigFileError(f"{path}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
    slugs = {p.slug for p in parsed.plugins}
    _check_secrets(path, parsed, environ)
    llm_ids = {llm.slug: number for number, llm in enumerate(parsed.llms, start=1)}
    llms: list[LLMEntry] = []
    for llm in parsed.llms:
        for entry in llm.plugins:
            if entry.plugin not in slugs:
                raise ConfigFileError(
                    f"{path}: llm {llm.slug} uses plugin {entry.plugin!r}, which is not defined"
                )
        api_key = _secret(environ, llm.api_key_env, f"llm {llm.slug}") if llm.api_key_env else ""
        llms.append(
            {
                "id": llm_ids[llm.slug], "slug": llm.slug, "name": llm.name or llm.slug, "vendor": llm.vendor,
                "upstream_url": llm.upstream_url.rstrip("/"), "api_key": api_key, "is_active": llm.is_active,
                "options": llm.options, "namespace": "",
                "chain": [
                    {
                        "plugin": entry.plugin, "position": n, "config_override": entry.config_override,
                        "timeout_ms": entry.timeout_ms, "failure_policy": entry.failure_policy,
                    }
                    for n, entry in enumerate(llm.plugins)
                ],
            }
        )  # fmt: skip
    apps: list[AppEntry] = []
    for number, app in enumerate(parsed.apps, start=1):
        unknown = [name for name in app.llms if name not in llm_ids]
        if unknown:
            raise ConfigFileError(f"{path}: app {app.name} names unknown llm {unknown[0]!r}")
        agents = {p.slug for p in parsed.plugins if AGENT_HOOK in p.hook_types}
        strangers = [slug for slug in app.agents if slug not in agents]
        if strangers:
            raise ConfigFileError(
                f"{path}: app {app.name} names {strangers[0]!r} in agents, which is no plugin with "
                "agent in its hook_types"
            )
        keys = [hash_key(_secret(environ, name, f"app {app.name}")) for name in app.keys_env]
        apps.append(
            {
                "id": number, "name": app.name, "is_active": app.is_active, "namespace": "",
                "llm_ids": [llm_ids[name] for name in app.llms], "key_hashes": sorted(keys),
                "agents": sorted(set(app.agents)),
            }
        )  # fmt: skip
    plugins: list[PluginEntry] = [
        {
            "slug": p.slug, "command": p.command, "config": p.config, "hook_type": p.hook_types[0],
            "hook_types": list(p.hook_types), "plugin_type": "gateway", "is_active": p.is_active,
            "is_global": p.is_global, "timeout_ms": p.timeout_ms, "failure_policy": p.failure_policy,
            "env": p.env, "checksum": p.checksum, "namespace": "", "digest": None,
            "approved_scopes": sorted(set(p.scopes)),
        }
        for p in parsed.plugins
    ]  # fmt: skip
    return new_snapshot("", 0, plugins, llms, apps)


class FileSource:
    """Applies the file at start and again whenever it changes; a broken edit keeps the last good one."""

    def __init__(self, path: Path, environ: Mapping[str, str], apply: Apply) -> None:
        self.path = path
        self.environ = environ
        self.apply = apply
        self.status = SyncStatus(source="file")
        self._seen: tuple[float, int] | None = None

    def _stamp(self) -> tuple[float, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_mtime, info.st_size

    async def load(self) -> None:
        """Apply the file now; ConfigFileError when it cannot be used."""
        self._seen = self._stamp()
        snapshot = snapshot_from_file(self.path, self.environ)
        if snapshot["version"] != self.status.version:
            await self.apply(snapshot)
        self.status = SyncStatus(version=snapshot["version"], source="file", stale=False)

    async def run(self) -> None:
        """Watch the file until cancelled."""
        while True:
            await asyncio.sleep(POLL_S)
            if self._stamp() == self._seen:
                continue
            try:
                await self.load()
                log.info("config file applied", path=str(self.path), version=self.status.version)
            except ConfigFileError as exc:
                self.status.error = str(exc)
                log.error("config file not applied; keeping the previous configuration", error=str(exc))
