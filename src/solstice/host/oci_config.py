"""The OCI puller's configuration from the settings, with registry connections under the policy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from solstice.oci.connect import CheckedBackend
from solstice.oci.errors import OciDisabledError, RegistryError
from solstice.oci.puller import OciConfig, cache_dir_of, split_list
from solstice.oci.registry import ClientOptions
from solstice.security.addresses import IPAddress
from solstice.security.policy import Policy, PolicyError
from solstice.security.resolve import ResolveError
from solstice.settings import Settings


def policy_backend(policy: Policy) -> CheckedBackend:
    """A network backend that connects only to the addresses `policy` accepts for each host."""

    async def check(host: str) -> Sequence[IPAddress]:
        try:
            return await policy.check_url_host(host)
        except PolicyError as exc:
            raise OciDisabledError(str(exc)) from None
        except ResolveError as exc:
            raise RegistryError(f"registry host {exc}", retryable=True) from None

    return CheckedBackend(check)


def config_from_settings(
    settings: Settings, *, cache_dir: Path | None = None, edge: bool = False
) -> OciConfig:
    """The puller's configuration from the settings: the control plane's, or with `edge` the edge
    gateway's (OCI_PLUGINS_CACHE_DIR and OCI_PLUGINS_REQUIRE_SIGNATURE, signatures required by default).
    """
    if edge:
        cache_dir = cache_dir or settings.edge_oci_cache_dir
    # PLUGIN_BLOCK_INTERNAL_URLS: every connection the client makes (registry, token realm,
    # redirect) goes to an address the security policy checked, resolved once.
    backend = policy_backend(Policy.from_settings(settings)) if settings.plugin_block_internal_urls else None
    client = ClientOptions(
        network_backend=backend,
        insecure_registries=frozenset(split_list(settings.oci_insecure_registries)),
        ca_bundle=str(settings.oci_ca_bundle) if settings.oci_ca_bundle else None,
        timeout=settings.oci_timeout,
        total_timeout=settings.oci_total_timeout,
        retries=settings.oci_retries,
    )
    return OciConfig(
        cache_dir=cache_dir or cache_dir_of(settings),
        require_signature=settings.edge_oci_require_signature if edge else settings.oci_require_signature,
        allowed_registries=split_list(settings.oci_allowed_registries),
        max_blob_bytes=settings.oci_max_blob_bytes,
        max_decompressed_bytes=settings.oci_max_decompressed_bytes,
        cache_max_bytes=settings.oci_cache_max_bytes,
        client=client,
        environ=settings.environ,
    )
