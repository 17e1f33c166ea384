"""Choosing one manifest of an image index by platform (`?arch=` or this machine's)."""

from __future__ import annotations

import platform as _platform
from typing import Any

from solstice.oci.errors import PlatformError

# uname machine names, as OCI spells them (GOARCH).
_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm/v7",
    "armv6l": "arm/v6",
    "i686": "386",
    "i386": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host_platform() -> str:
    """This machine's platform as os/arch[/variant], e.g. linux/amd64."""
    machine = _platform.machine().lower()
    return f"{_platform.system().lower()}/{_ARCH.get(machine, machine)}"


def describe(entry: dict[str, Any]) -> str:
    """The os/arch[/variant] of an index entry."""
    spec = _platform_of(entry)
    text = f"{spec.get('os', '?')}/{spec.get('architecture', '?')}"
    return text + (f"/{spec['variant']}" if spec.get("variant") else "")


def _matches(entry: dict[str, Any], wanted: str) -> bool:
    os_name, _, arch = wanted.partition("/")
    arch, _, variant = arch.partition("/")
    spec = _platform_of(entry)
    if spec.get("os") != os_name or spec.get("architecture") != arch:
        return False
    return not variant or spec.get("variant") in (variant, None)


def _platform_of(entry: dict[str, Any]) -> dict[str, Any]:
    spec = entry.get("platform")
    return spec if isinstance(spec, dict) else {}


def select(index: dict[str, Any], wanted: str, where: str) -> dict[str, Any]:
    """The index entry for `wanted`; a PlatformError lists the platforms the index offers."""
    manifests = index.get("manifests")
    entries = (
        [e for e in manifests if isinstance(e, dict) and _platform_of(e)]
        if isinstance(manifests, list)
        else []
    )
    for entry in entries:
        if _matches(entry, wanted):
            return entry
    offered = ", ".join(sorted({describe(e) for e in entries})) or "none"
    raise PlatformError(
        f"{where} has no plugin for platform {wanted}; it offers: {offered}; "
        "pick one with ?arch=os/arch or push a build for this platform"
    )
