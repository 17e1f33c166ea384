"""Turns an oci:// reference into a verified executable in the cache, ready to run like file://.

Order of work for one load: resolve the tag (falling back to the last known digest when the
registry is unreachable), answer from the cache when possible, else fetch the manifest by digest,
choose the platform, verify the cosign signature, and only then download and extract layers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import json
import shutil
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from solstice.metrics import OCI_CACHE_HITS, OCI_PULL_BYTES, OCI_PULLS
from solstice.oci import credentials, layers, media, signing
from solstice.oci import platform as platforms
from solstice.oci.cache import Cache, Entry, entry_key
from solstice.oci.descriptors import check_digest
from solstice.oci.errors import (
    ContentError,
    NotFoundError,
    OciDisabledError,
    OciError,
    PlatformError,
    RegistryAuthError,
    RegistryError,
    SignatureRequiredError,
)
from solstice.oci.keys import PublicKey, key_id, public_keys_from_environ
from solstice.oci.reference import OciReference
from solstice.oci.registry import ClientOptions, Manifest, Progress, RegistryClient
from solstice.oci.tarstream import Budget
from solstice.oci.worker import run_stoppable
from solstice.settings import Settings

log = structlog.get_logger("solstice.oci")


@dataclass(frozen=True)
class OciConfig:
    """Everything the puller needs, from the control plane's or the edge's settings."""

    cache_dir: Path
    require_signature: bool = False
    allowed_registries: tuple[str, ...] = ()
    max_blob_bytes: int = 512 << 20
    max_decompressed_bytes: int = layers.DEFAULT_MAX_DECOMPRESSED_BYTES
    cache_max_bytes: int = 2 << 30
    client: ClientOptions = field(default_factory=ClientOptions)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Pulled:
    """A plugin executable ready to start, and where it came from."""

    path: Path
    reference: OciReference
    digest: str
    manifest_digest: str
    platform: str
    cached: bool
    verified_key: str = ""
    warnings: tuple[str, ...] = ()
    key: str = ""


def split_list(text: str) -> tuple[str, ...]:
    """Comma-separated settings as a tuple of trimmed, non-empty items."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def cache_dir_of(settings: Settings) -> Path:
    """The control plane's OCI cache: AI_STUDIO_OCI_CACHE_DIR, else <data dir>/oci-cache."""
    return settings.oci_cache_dir or settings.data_dir / "oci-cache"


class Puller:
    """Pulls, verifies and caches oci:// plugins; one per process, shared by every plugin."""

    def __init__(self, config: OciConfig) -> None:
        self.config = config
        self.cache = Cache(config.cache_dir, config.cache_max_bytes)
        try:
            self.cache.prepare()
        except OSError as exc:
            raise OciDisabledError(
                f"the OCI cache directory {config.cache_dir} is not usable ({exc.strerror or exc}); "
                "point AI_STUDIO_OCI_CACHE_DIR (edge: OCI_PLUGINS_CACHE_DIR) at a writable directory"
            ) from None
        self._keys: dict[str, PublicKey] = public_keys_from_environ(config.environ)
        # One lock per download in progress; an idle lock is dropped with its last user.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._pins: dict[str, int] = {}

    # -- pins: executables of running plugins are never evicted ----------------------------------

    def pin(self, key: str) -> None:
        """Keep an entry while a plugin runs from it."""
        self._pins[key] = self._pins.get(key, 0) + 1

    def unpin(self, key: str) -> None:
        """Release an entry pinned by pin()."""
        left = self._pins.get(key, 0) - 1
        if left > 0:
            self._pins[key] = left
        else:
            self._pins.pop(key, None)

    @property
    def pinned(self) -> frozenset[str]:
        """Keys of entries in use."""
        return frozenset(self._pins)

    # -- pulling -----------------------------------------------------------------------------

    async def pull(self, ref: OciReference, progress: Progress | None = None) -> Pulled:
        """The executable for `ref`, from the cache or the registry; OciError says what failed.

        The entry comes back pinned, so no eviction removes it: unpin(pulled.key) when done.
        """
        limit = self.config.client.total_timeout
        try:
            async with asyncio.timeout(limit):
                pulled = await self._pull(ref, progress)
        except TimeoutError:
            OCI_PULLS.labels(ref.registry, "failed").inc()
            raise RegistryError(
                f"pulling {ref} took longer than {limit:.0f} s (OCI_PLUGINS_TOTAL_TIMEOUT); it was "
                "stopped and nothing was cached"
            ) from None
        except OSError as exc:
            OCI_PULLS.labels(ref.registry, "failed").inc()
            # The cache directory or the CA bundle failed us: still one sentence, still an OciError.
            raise OciError(f"pulling {ref} failed on this machine: {exc.strerror or exc}") from None
        except OciError:
            OCI_PULLS.labels(ref.registry, "failed").inc()
            raise
        OCI_PULLS.labels(ref.registry, "cached" if pulled.cached else "pulled").inc()
        if pulled.cached:
            OCI_CACHE_HITS.labels(ref.registry).inc()
        return pulled

    def _check_allowed(self, ref: OciReference) -> None:
        allowed = self.config.allowed_registries
        if allowed and not any(fnmatch.fnmatchcase(ref.registry, pattern) for pattern in allowed):
            raise OciDisabledError(
                f"registry {ref.registry} is not in the allowed registries ({', '.join(allowed)}); "
                "add it to OCI_PLUGINS_ALLOWED_REGISTRIES or use an allowed registry"
            )

    def _client(self, ref: OciReference) -> RegistryClient:
        credential = credentials.resolve(ref.registry, self.config.environ, ref.auth)
        return RegistryClient(ref.registry, credential, self.config.client)

    def _wanted_platform(self, ref: OciReference) -> str:
        return ref.platform or platforms.host_platform()

    def _keys_for(self, ref: OciReference) -> dict[str, PublicKey]:
        if ref.pubkey is None:
            return self._keys
        if ref.pubkey not in self._keys:
            configured = ", ".join(self._keys) or "none"
            raise SignatureRequiredError(
                f"?pubkey={ref.pubkey} names no configured key (configured: {configured}); set "
                f"OCI_PLUGINS_PUBLIC_KEY_{ref.pubkey}=/path/to/cosign.pub"
            )
        return {ref.pubkey: self._keys[ref.pubkey]}

    def _must_verify(self, ref: OciReference) -> bool:
        return self.config.require_signature or ref.pubkey is not None

    async def _pull(self, ref: OciReference, progress: Progress | None) -> Pulled:
        self._check_allowed(ref)
        keys = self._keys_for(ref) if self._must_verify(ref) else {}
        if self._must_verify(ref) and not keys:
            raise SignatureRequiredError(
                f"{ref} must be signed but no public key is configured; set "
                "OCI_PLUGINS_PUBLIC_KEY_1=/path/to/cosign.pub"
            )
        wanted = self._wanted_platform(ref)
        if ref.digest and (entry := self._cached(ref, ref.digest, wanted, keys)):
            return self._hit(ref, entry, [])  # pinned by digest and present: no registry round trip
        pulled: Pulled | None = None
        try:
            async with self._client(ref) as client:
                pulled = await self._resolve_and_fetch(client, ref, wanted, keys, progress)
            if not pulled.cached:
                self._remember(ref, pulled.digest)
                self.cache.evict(self.pinned)
        except BaseException:
            if pulled is not None:
                self.unpin(pulled.key)  # the caller gets no entry, so nothing it could unpin
            raise
        return pulled

    async def _resolve_and_fetch(
        self,
        client: RegistryClient,
        ref: OciReference,
        wanted: str,
        keys: Mapping[str, PublicKey],
        progress: Progress | None,
    ) -> Pulled:
        """The pinned entry for what `ref` resolves to now, downloaded when it is not cached."""
        digest, warnings = await self._resolve(client, ref)
        if entry := self._cached(ref, digest, wanted, keys):
            return self._hit(ref, entry, warnings, fresh_tag=not warnings)
        lock = self._locks.setdefault(digest + wanted, asyncio.Lock())
        async with lock:
            if entry := self._cached(ref, digest, wanted, keys):
                return self._hit(ref, entry, warnings, fresh_tag=not warnings)
            pulled = await self._download(client, ref, digest, wanted, keys, progress)
        return dataclasses.replace(pulled, warnings=tuple(warnings))

    def _hit(self, ref: OciReference, entry: Entry, warnings: list[str], fresh_tag: bool = False) -> Pulled:
        if fresh_tag:
            self._remember(ref, entry.digest)
        self.pin(entry.key)
        return self._from_entry(ref, entry, warnings)

    def _remember(self, ref: OciReference, digest: str) -> None:
        # Only a tag that led to a usable entry is remembered for loads while the registry is down.
        if not ref.digest:
            self.cache.remember_tag(f"{ref.name}:{ref.tag}", digest)

    def _cached(
        self, ref: OciReference, digest: str, wanted: str, keys: Mapping[str, PublicKey]
    ) -> Entry | None:
        # Index entries are keyed by platform; a plain manifest by its digest alone.
        for key in (entry_key(digest, wanted), entry_key(digest, None)):
            entry = self.cache.get(key)
            if entry is not None and self._trusted(entry, keys):
                if key == entry_key(digest, None) and entry.platform:
                    _check_platform(entry.platform, wanted, ref.pinned(digest).image)
                return entry
        return None

    def _trusted(self, entry: Entry, keys: Mapping[str, PublicKey]) -> bool:
        """A cached entry may run without a registry round trip when no signature is needed or
        the key that verified it at pull time is still configured."""
        if not keys:
            return True
        return entry.verified_key in {key_id(k) for k in keys.values()}

    def _from_entry(self, ref: OciReference, entry: Entry, warnings: list[str]) -> Pulled:
        return Pulled(
            path=entry.path,
            reference=ref,
            digest=entry.digest,
            manifest_digest=entry.manifest_digest,
            platform=entry.platform,
            cached=True,
            verified_key=entry.verified_key,
            warnings=tuple(warnings),
            key=entry.key,
        )

    async def _resolve(self, client: RegistryClient, ref: OciReference) -> tuple[str, list[str]]:
        """The digest to run: the reference's own, or the tag's now, or (registry down) the last."""
        if ref.digest:
            return ref.digest, []
        tag_ref = f"{ref.name}:{ref.tag}"
        try:
            digest = await client.resolve(ref.repository, ref.ref)
        except (RegistryAuthError, NotFoundError):
            raise
        except RegistryError as exc:
            known = self.cache.recall_tag(tag_ref)
            if known is None:
                raise
            digest, when = known
            age = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))
            warning = (
                f"registry {ref.registry} is unreachable ({exc}); running {tag_ref} as {digest}, "
                f"its digest at {age}"
            )
            log.warning("oci registry unreachable; using its last digest", reference=str(ref), digest=digest)
            return digest, [warning]
        return digest, []

    async def _download(
        self,
        client: RegistryClient,
        ref: OciReference,
        digest: str,
        wanted: str,
        keys: Mapping[str, PublicKey],
        progress: Progress | None,
    ) -> Pulled:
        where = ref.pinned(digest).image
        top = await client.manifest(ref.repository, digest)
        manifest, chosen = top, ""
        if top.is_index:
            descriptor = platforms.select(top.data, wanted, where)
            # Fetched by digest or not at all: a tag here would escape the index's integrity.
            child = check_digest(descriptor.get("digest"), f"the {wanted} entry of index {where}")
            manifest = await client.manifest(ref.repository, child)
            chosen = wanted
        elif top.media_type not in media.MANIFESTS:
            raise ContentError(
                f"{where} is a {top.media_type or 'document without mediaType'}, not an image "
                "manifest or index"
            )
        verified = ""
        if keys:
            verified = await self._verify(client, ref, top, manifest, keys)
        workdir = self.cache.workdir()
        try:
            plan, built = await self._plan(client, ref, manifest, wanted if not top.is_index else "", where)
            files = []
            for number, layer in enumerate(plan.layers):
                path = workdir / f"layer-{number}"
                size = await client.blob_to_file(
                    ref.repository, layer.digest, path, self.config.max_blob_bytes, progress
                )
                OCI_PULL_BYTES.labels(ref.registry).inc(size)
                files.append(path)
            entry_dir = workdir / "entry"
            entry_dir.mkdir()
            executable = entry_dir / "plugin"
            log.info("oci plugin extracting", reference=str(ref), digest=digest, layers=len(files))
            await self._extract(plan, files, executable, where, digest)
            key = entry_key(digest, chosen or None)
            meta: dict[str, Any] = {
                "reference": str(ref),
                "digest": digest,
                "manifest_digest": manifest.digest,
                # An index entry is for the chosen platform; an image knows its own; an artifact: "".
                "platform": chosen or built,
                "size": executable.stat().st_size,
                "verified_key": verified,
            }
            # Pinned before it becomes visible: closing the client awaits, and a concurrent pull's
            # eviction in that window must not take what this one returns.
            self.pin(key)
            try:
                entry = self.cache.commit(key, entry_dir, meta)
                if verified and entry.verified_key != verified:
                    # The entry was already there, pulled without (or with another) signature check.
                    self.cache.update_meta(key, verified_key=verified)
            except BaseException:
                self.unpin(key)
                raise
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        log.info("oci plugin pulled", reference=str(ref), digest=digest, size=entry.size)
        return Pulled(
            path=entry.path,
            reference=ref,
            digest=digest,
            manifest_digest=manifest.digest,
            platform=entry.platform,
            cached=False,
            verified_key=verified,
            key=key,
        )

    async def _extract(
        self, plan: layers.Plan, files: list[Path], executable: Path, where: str, digest: str
    ) -> None:
        """Extract in a thread that stops within one chunk when this pull is cancelled."""

        def work(stop: threading.Event) -> None:
            budget = Budget(self.config.max_decompressed_bytes, stop)
            layers.extract(plan, files, executable, self.config.max_blob_bytes, where, budget)

        await run_stoppable(f"oci-extract {digest[:19]}", work)

    async def _plan(
        self, client: RegistryClient, ref: OciReference, manifest: Manifest, wanted: str, where: str
    ) -> tuple[layers.Plan, str]:
        """How to extract the plugin, and the platform an image says it is built for ("" unknown)."""
        data = manifest.data
        if not layers.is_image(data):
            return layers.artifact_plan(data, where), ""
        config_digest = str((data.get("config") or {}).get("digest"))
        config_raw = await client.blob_bytes(ref.repository, config_digest, layers.MAX_CONFIG_BYTES)
        built = _image_platform(config_raw)
        if wanted and built:
            _check_platform(built, wanted, where)
        return layers.image_plan(data, config_raw, where), built

    # -- signatures ----------------------------------------------------------------------------

    async def _verify(
        self,
        client: RegistryClient,
        ref: OciReference,
        top: Manifest,
        manifest: Manifest,
        keys: Mapping[str, PublicKey],
    ) -> str:
        """The id of the key that signed the index (or else the platform manifest); refuses otherwise."""
        refusal: SignatureRequiredError | None = None
        for digest in dict.fromkeys((top.digest, manifest.digest)):
            try:
                verified = await signing.verify(client, ref.repository, digest, keys)
            except SignatureRequiredError as exc:
                refusal = refusal or exc
                continue
            log.info("oci signature verified", reference=str(ref), digest=digest, key=verified.key)
            return key_id(keys[verified.key])
        assert refusal is not None
        raise refusal


def _image_platform(config_raw: bytes) -> str:
    """os/arch[/variant] from an image config, or "" when it does not say."""
    try:
        config = json.loads(config_raw)
    except ValueError:
        return ""
    if not isinstance(config, dict) or not config.get("os") or not config.get("architecture"):
        return ""
    variant = f"/{config['variant']}" if config.get("variant") else ""
    return f"{config['os']}/{config['architecture']}{variant}"


def _check_platform(built: str, wanted: str, where: str) -> None:
    """A single-platform image built for another platform would fail at exec: say so now."""
    if built.split("/")[:2] != wanted.split("/")[:2]:
        raise PlatformError(
            f"{where} is built for {built}, not {wanted}; push a {wanted} build or pick the "
            "platform with ?arch=os/arch"
        )
