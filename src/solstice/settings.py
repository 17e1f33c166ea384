"""The SOLSTICE_* variables (and their aliases) of the server, the edge and `solstice oci`, parsed once.

Other variables are read by the name a user chose or by a name pattern, from `Settings.environ` (the
environment as it was when the settings were read): registry credentials (OCI_PLUGINS_REGISTRY_*,
DOCKER_CONFIG, HOME), signature keys (OCI_PLUGINS_PUBKEY_*), COSIGN_PASSWORD and SOURCE_DATE_EPOCH
(`solstice oci`), plugins.yaml's api_key_env and keys_env, and the variables handed to plugins
(BASE_PLUGIN_ENV and each plugin's env). Three readers stand apart: the API's env check looks in
os.environ for the names registry credentials point at, the CLI client reads SOLSTICE_URL and
SOLSTICE_TOKEN (cli/client.py), and a plugin process reads its handshake variables (sdk/serve.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from solstice.protocol.limits import RECORD_BODY_BYTES
from solstice.protocol.transport import MAX_MESSAGE_BYTES

# Variables a plugin process always receives from the host, when the host has them.
BASE_PLUGIN_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")


class Settings(BaseSettings):
    """Solstice configuration; each field maps to SOLSTICE_<FIELD> unless an alias says otherwise."""

    model_config = SettingsConfigDict(env_prefix="SOLSTICE_", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="Address `solstice serve` binds.")
    port: int = Field(3000, ge=1, le=65535, description="Port of the API and gateway.")
    data_dir: Path = Field(Path("./data"), description="Where the embedded database and state live.")
    database_url: str = Field(
        "", description="postgresql://user:pass@host/db to share a database; empty: SQLite in data_dir."
    )
    admin_token: str = Field("", description="An admin API token accepted in addition to stored tokens.")
    reconcile_interval: float = Field(
        10.0, gt=0, description="Seconds between checks of the database for plugin changes by other servers."
    )
    plugin_load_concurrency: int = Field(8, ge=1, description="Plugins started at once at server start.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"

    plugin_handshake_timeout: float = Field(
        60.0, gt=0, description="Seconds a local plugin has to print its handshake line."
    )
    plugin_stop_grace: float = Field(
        2.0, ge=0, description="Seconds between asking a plugin to shut down and SIGKILL."
    )
    plugin_connect_timeout: float = Field(
        10.0, gt=0, description="Seconds to reach a grpc:// plugin when it is loaded."
    )
    plugin_configure_timeout: float = Field(
        10.0, gt=0, description="Seconds a plugin has to answer GetInfo and Configure when it starts."
    )
    plugin_health_interval: float = Field(10.0, gt=0, description="Seconds between health checks.")
    plugin_health_timeout: float = Field(2.0, gt=0, description="Deadline of one health check.")
    plugin_restart_backoff: float = Field(0.5, gt=0, description="First restart delay, doubled each time.")
    plugin_restart_backoff_max: float = Field(30.0, gt=0, description="Longest restart delay.")
    plugin_max_start_failures: int = Field(
        5, ge=1, description="Consecutive failed starts after which a plugin is marked failed."
    )
    plugin_timeout_ms: int = Field(1000, ge=1, description="Default deadline of one hook call.")
    plugin_endpoint_timeout: float = Field(
        60.0, gt=0, allow_inf_nan=False, description="Deadline of one custom endpoint call answered whole."
    )
    plugin_endpoint_stream_timeout: float = Field(
        300.0,
        gt=0,
        allow_inf_nan=False,
        description="Deadline of one streamed custom endpoint call, and of an agent's answer to one turn.",
    )
    plugin_kv_max_value_bytes: int = Field(
        256 << 10, ge=1, le=4 << 20, description="Largest value a plugin may store under one key."
    )
    plugin_kv_max_bytes: int = Field(
        64 << 20,
        ge=1,
        description="Most a plugin may store in all (keys and values, expired ones not counted).",
    )
    schedule_interval: float = Field(
        1.0, gt=0, le=60, description="Seconds between a server's checks for due schedule runs."
    )
    schedule_misfire_grace: float = Field(
        30.0,
        gt=0,
        description="A run this many seconds past its due time counts as missed "
        "(the schedule's catch_up decides).",
    )
    schedule_heartbeat: float = Field(
        10.0,
        gt=0,
        description="Seconds between a server's notes that its runs still run; after three missed notes "
        "another server marks the run failed.",
    )
    schedule_history: int = Field(100, ge=1, le=10_000, description="Runs kept per schedule.")
    object_hook_interval: float = Field(
        0.5,
        gt=0,
        le=60,
        description="Seconds between a server's deliveries of after_* object hook notifications.",
    )
    object_hook_retry_max: float = Field(
        300.0, ge=1, description="Longest wait before a failed after_* notification is sent again."
    )
    object_hook_max_age: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="Seconds an undelivered after_* notification is kept; older ones are dropped "
        "with a warning.",
    )
    plugin_drain_timeout: float = Field(
        30.0, ge=0, description="Seconds a replaced plugin instance may finish in-flight calls."
    )
    plugin_cgroups: bool = Field(
        True,
        description="Run each local plugin in its own cgroup (v2), so nothing it starts outlives it.",
    )

    shutdown_timeout: float = Field(
        30.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds in-flight requests may finish after SIGTERM; then they are cancelled.",
    )
    http_max_header_bytes: int = Field(
        64 << 10,
        ge=1024,
        description="Largest request head (request line and headers) a client may send; larger ones get 431.",
    )
    http_header_timeout: float = Field(
        10.0, gt=0, description="Seconds a client has to send a whole request head; then 408 and close."
    )
    http_body_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a client has to send a whole request body after its head; then 408 and close.",
    )
    gateway_max_body_bytes: int = Field(10 << 20, ge=1, description="Largest request body the proxy accepts.")
    gateway_max_response_bytes: int = Field(
        32 << 20,
        ge=1,
        description="Largest buffered upstream answer; streams are not limited.",
    )
    upstream_timeout: float = Field(120.0, gt=0, description="Seconds an upstream may take to answer.")
    upstream_connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect to an upstream.")
    data_collection_queue: int = Field(10_000, ge=1, description="Proxy records waiting for data_collection.")
    data_collection_batch: int = Field(100, ge=1, description="Records per data_collection call.")

    # The edge gateway (`solstice edge`): where its configuration comes from.
    control_url: str = Field(
        "", description="The control plane an edge syncs from, e.g. http://control:3000."
    )
    edge_token: str = Field(
        "",
        description="An edge-scoped API token: what an edge sends, and one more a control plane accepts.",
    )
    edge_namespace: str = Field(
        "", pattern=r"^[A-Za-z0-9_.-]{0,100}$", description="The edge's namespace; empty: global items only."
    )
    edge_id: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_.-]{0,100}$",
        description="A stable id; empty: generated once, kept in data_dir.",
    )
    edge_name: str = Field(
        "", max_length=200, description="A name shown in GET /api/v1/edges; empty: hostname."
    )
    edge_sync_wait: float = Field(25.0, gt=0, le=60, description="Seconds one sync request long-polls.")
    edge_config: Path | None = Field(
        None, description="A plugins.yaml an edge serves instead of syncing from a control plane."
    )

    # The command security policy, under the reference page's variable names.
    allow_internal_network_access: bool = Field(
        False,
        validation_alias=AliasChoices(
            "ALLOW_INTERNAL_NETWORK_ACCESS", "SOLSTICE_ALLOW_INTERNAL_NETWORK_ACCESS"
        ),
        description="Let grpc:// plugins target internal addresses (with a warning).",
    )
    plugin_command_allowlist: str = Field(
        "",
        validation_alias=AliasChoices("PLUGIN_COMMAND_ALLOWLIST", "SOLSTICE_PLUGIN_COMMAND_ALLOWLIST"),
        description="Comma-separated path globs, grpc:// CIDRs or hosts and oci:// globs; when set, "
        "commands matching no entry are refused.",
    )
    plugin_block_internal_urls: bool = Field(
        False,
        validation_alias=AliasChoices("PLUGIN_BLOCK_INTERNAL_URLS", "SOLSTICE_PLUGIN_BLOCK_INTERNAL_URLS"),
        description="Apply the internal-address rules to OCI registries and every URL the OCI client "
        "follows.",
    )
    upstream_internal_allowlist: str = Field(
        "",
        description="Comma-separated hosts, host:port, IP addresses or CIDRs of internal LLM upstreams "
        "permitted without ALLOW_INTERNAL_NETWORK_ACCESS (a local model server).",
    )

    # Encryption at rest of LLM upstream keys (and of the keys in an edge's snapshot file).
    secret_key: str = Field(
        "", description="The key that encrypts stored secrets (Fernet: 32 bytes, URL-safe base64)."
    )
    secret_key_file: Path | None = Field(
        None,
        description="A file holding SOLSTICE_SECRET_KEY; unset: <data_dir>/secret.key, made at first start.",
    )
    secret_keys_old: str = Field(
        "", description="Comma-separated earlier keys, used only to decrypt while secrets are re-encrypted."
    )

    # OCI plugins. The reference page's variable names come first; SOLSTICE_OCI_* also work.
    oci_cache_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices("AI_STUDIO_OCI_CACHE_DIR", "SOLSTICE_OCI_CACHE_DIR"),
        description="Cache of pulled OCI plugins; unset: <data_dir>/oci-cache.",
    )
    oci_require_signature: bool = Field(
        False,
        validation_alias=AliasChoices("AI_STUDIO_OCI_REQUIRE_SIGNATURE", "SOLSTICE_OCI_REQUIRE_SIGNATURE"),
        description="Refuse oci:// plugins without a valid cosign signature.",
    )
    # The edge gateway's names for the same two settings, with the edge's defaults.
    edge_oci_cache_dir: Path = Field(
        Path("/var/lib/microgateway/plugins"),
        validation_alias=AliasChoices("OCI_PLUGINS_CACHE_DIR", "SOLSTICE_EDGE_OCI_CACHE_DIR"),
        description="Cache of pulled OCI plugins on an edge gateway.",
    )
    edge_oci_require_signature: bool = Field(
        True,
        validation_alias=AliasChoices("OCI_PLUGINS_REQUIRE_SIGNATURE", "SOLSTICE_EDGE_OCI_REQUIRE_SIGNATURE"),
        description="Refuse unsigned oci:// plugins on an edge gateway.",
    )
    oci_insecure_registries: str = Field(
        "",
        validation_alias=AliasChoices(
            "AI_STUDIO_OCI_INSECURE_REGISTRIES",
            "OCI_PLUGINS_INSECURE_REGISTRIES",
            "SOLSTICE_OCI_INSECURE_REGISTRIES",
        ),
        description="Comma-separated registries reached over plain HTTP (loopback always is).",
    )
    oci_allowed_registries: str = Field(
        "",
        validation_alias=AliasChoices(
            "AI_STUDIO_OCI_ALLOWED_REGISTRIES",
            "OCI_PLUGINS_ALLOWED_REGISTRIES",
            "SOLSTICE_OCI_ALLOWED_REGISTRIES",
        ),
        description="Comma-separated registry host globs oci:// may use; empty: any.",
    )
    oci_ca_bundle: Path | None = Field(
        None,
        validation_alias=AliasChoices("OCI_PLUGINS_CA_BUNDLE", "SOLSTICE_OCI_CA_BUNDLE"),
        description="PEM file of CA certificates trusted for registries, instead of the system's.",
    )
    oci_max_blob_bytes: int = Field(
        512 << 20,
        ge=1,
        validation_alias=AliasChoices("OCI_PLUGINS_MAX_BLOB_BYTES", "SOLSTICE_OCI_MAX_BLOB_BYTES"),
        description="Largest layer (and extracted executable) accepted from a registry.",
    )
    oci_max_decompressed_bytes: int = Field(
        2 << 30,
        ge=1,
        validation_alias=AliasChoices(
            "OCI_PLUGINS_MAX_DECOMPRESSED_BYTES", "SOLSTICE_OCI_MAX_DECOMPRESSED_BYTES"
        ),
        description="Bytes the tar layers of one pull may decompress to, in all; the pull stops beyond.",
    )
    oci_cache_max_bytes: int = Field(
        2 << 30,
        ge=1,
        validation_alias=AliasChoices("OCI_PLUGINS_CACHE_MAX_BYTES", "SOLSTICE_OCI_CACHE_MAX_BYTES"),
        description="Size bound of the OCI cache; least recently used unpinned entries go first.",
    )
    oci_timeout: float = Field(
        30.0,
        gt=0,
        validation_alias=AliasChoices("OCI_PLUGINS_TIMEOUT", "SOLSTICE_OCI_TIMEOUT"),
        description="Seconds one registry request may take.",
    )
    oci_total_timeout: float = Field(
        600.0,
        gt=0,
        validation_alias=AliasChoices("OCI_PLUGINS_TOTAL_TIMEOUT", "SOLSTICE_OCI_TOTAL_TIMEOUT"),
        description="Seconds one pull may take in all, retries included.",
    )
    oci_retries: int = Field(
        3,
        ge=0,
        validation_alias=AliasChoices("OCI_PLUGINS_RETRIES", "SOLSTICE_OCI_RETRIES"),
        description="Retries of a registry request after a connection failure, 429 or 5xx.",
    )

    _environ: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator(
        "allow_internal_network_access",
        "plugin_block_internal_urls",
        "oci_require_signature",
        "edge_oci_require_signature",
        mode="before",
    )
    @classmethod
    def _empty_is_default(cls, value: object, info: ValidationInfo) -> object:
        # Compose files often write `VAR=` for "not set": that means the default, not an error.
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[info.field_name or ""].default
        return value

    @model_validator(mode="after")
    def _grace_outlasts_a_check(self) -> Settings:
        if self.schedule_misfire_grace > 2 * self.schedule_interval:
            return self
        error = PydanticCustomError(
            "grace_shorter_than_checks",
            "must be more than twice the schedule interval ({interval} s), or runs on time count as missed",
            {"interval": f"{self.schedule_interval:g}"},
        )
        detail = InitErrorDetails(
            type=error, loc=("schedule_misfire_grace",), input=self.schedule_misfire_grace
        )
        raise ValidationError.from_exception_data(type(self).__name__, [detail])

    @model_validator(mode="after")
    def _one_record_fits_a_message(self) -> Settings:
        # One proxy record (and one on_response call) carries both bodies, and must fit a gRPC message.
        limits = {"gateway_max_body_bytes": self.gateway_max_body_bytes,
                  "gateway_max_response_bytes": self.gateway_max_response_bytes}  # fmt: skip
        total = sum(limits.values())
        if total <= RECORD_BODY_BYTES:
            return self
        # Name a limit that was set (the defaults fit); of two, one whose lowering alone can fix it.
        chosen = [name for name in limits if name in self.model_fields_set] or list(limits)
        blamed = next((n for n in chosen if total - limits[n] < RECORD_BODY_BYTES), chosen[0])
        other = total - limits[blamed]
        facts = {
            "other": "response" if blamed == "gateway_max_body_bytes" else "request",
            "other_value": other,
            "largest": RECORD_BODY_BYTES - other,
            "cap": MAX_MESSAGE_BYTES,
            "total": RECORD_BODY_BYTES,
        }
        why = "one proxy record holds both bodies and must fit a {cap}-byte grpc message"
        if other < RECORD_BODY_BYTES:
            text = (
                "with the {other} body limit at {other_value} bytes, the largest allowed value is {largest}: "
            )
        else:
            text = "the request and response body limits may add up to {total} bytes, so lower both: "
        error = PydanticCustomError("too_large_for_a_record", text + why, facts)
        detail = InitErrorDetails(type=error, loc=(blamed,), input=limits[blamed])
        raise ValidationError.from_exception_data(type(self).__name__, [detail])

    def model_post_init(self, context: object) -> None:
        self._environ = dict(os.environ)

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment as it was when these settings were read (registry credentials, keys)."""
        return self._environ

    def host_environment(self, names: Iterable[str]) -> dict[str, str]:
        """The values of the named variables in the host's environment, where set."""
        return {name: self._environ[name] for name in names if name in self._environ}


class SettingsError(ValueError):
    """An environment variable holds a value Solstice cannot use."""


_SECRET_HINTS = ("token", "password", "secret", "key", "database_url")


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        # Fields with their own names (AI_STUDIO_*, OCI_PLUGINS_*) report the name that was used.
        variable = field if field.isupper() else f"SOLSTICE_{field.upper()}"
        shown = "(hidden)" if any(h in field.lower() for h in _SECRET_HINTS) else repr(error.get("input"))
        problems.append(f"{variable}={shown} is invalid: {error['msg'].lower()}")
    return "; ".join(problems) + "; correct or unset it"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
