"""The plugin host: launches, connects, supervises and calls plugins."""

from solstice.host.errors import (
    HandshakeTimeoutError,
    PluginCallError,
    PluginConfigError,
    PluginError,
    PluginExitedError,
    PluginNotFoundError,
    PluginNotLoadedError,
    PluginPermissionError,
    PluginStartError,
    PluginStoppedError,
    PluginUnreachableError,
    ProtocolMismatchError,
)
from solstice.host.host import HookClient, PluginHost
from solstice.host.service_link import ServiceHandler, refusal
from solstice.host.spec import PluginSpec
from solstice.host.supervisor import PluginState, PluginStatus

__all__ = [
    "HandshakeTimeoutError",
    "HookClient",
    "PluginCallError",
    "PluginConfigError",
    "PluginError",
    "PluginExitedError",
    "PluginHost",
    "PluginNotFoundError",
    "PluginNotLoadedError",
    "PluginPermissionError",
    "PluginSpec",
    "PluginStartError",
    "PluginState",
    "PluginStatus",
    "PluginStoppedError",
    "PluginUnreachableError",
    "ProtocolMismatchError",
    "ServiceHandler",
    "refusal",
]
