"""The plugin host running oci:// plugins: restarts keep the digest, running executables stay cached."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from solstice.host import PluginHost, PluginSpec
from solstice.host.supervisor import PluginState
from solstice.oci.puller import OciConfig
from solstice.oci.registry import ClientOptions
from tests.conftest import fast_settings, wait_for
from tests.oci.images import push_image_with_umoci
from tests.oci.registries import Registry
from tests.oci.test_oci_plugins import copy_testbed


async def test_crash_restart_keeps_the_digest_and_reload_follows_the_tag(
    registry: Registry, tmp_path: Path
) -> None:
    first = push_image_with_umoci(registry, "plugins/testbed:v1", copy_testbed(tmp_path, "one"))
    oci = OciConfig(cache_dir=tmp_path / "cache", client=ClientOptions(retries=0, timeout=5))
    spec = PluginSpec(slug="oci-testbed", command=f"oci://{registry.host}/plugins/testbed:v1")
    async with PluginHost(fast_settings(), oci=oci) as host:
        await host.load(spec)
        status = host.status(spec.slug)
        assert status.digest == first and status.pid

        second = push_image_with_umoci(registry, "plugins/testbed:v1", copy_testbed(tmp_path, "two"))
        os.kill(status.pid, signal.SIGKILL)
        await wait_for(
            lambda: (
                host.status(spec.slug).restarts == 1 and host.status(spec.slug).state == PluginState.HEALTHY
            ),
            timeout=20,
        )
        assert host.status(spec.slug).digest == first  # a crash is not an upgrade

        await host.reload(spec.slug)
        assert host.status(spec.slug).digest == second


async def test_running_executables_are_never_evicted(registry: Registry, tmp_path: Path) -> None:
    digest = push_image_with_umoci(registry, "plugins/testbed:v1", copy_testbed(tmp_path, "pinned"))
    oci = OciConfig(cache_dir=tmp_path / "cache", client=ClientOptions(retries=0, timeout=5))
    spec = PluginSpec(slug="pinned", command=f"oci://{registry.host}/plugins/testbed@{digest}")
    async with PluginHost(fast_settings(), oci=oci) as host:
        await host.load(spec)
        puller = host.puller()
        assert puller.cache.evict(puller.pinned, max_bytes=0) == []
        assert len(puller.cache.entries()) == 1
        await host.unload(spec.slug)
        assert [e.digest for e in puller.cache.evict(puller.pinned, max_bytes=0)] == [digest]
        assert puller.cache.entries() == []
