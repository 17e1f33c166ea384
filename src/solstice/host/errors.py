"""Errors the host raises; each message is one sentence a user can act on."""

from __future__ import annotations


class PluginError(Exception):
    """Base of every plugin error; str() is the user-facing sentence."""


class PluginStartError(PluginError):
    """A plugin could not be started or reached."""


class PluginNotFoundError(PluginStartError):
    """The file:// path names no file."""


class PluginPermissionError(PluginStartError):
    """The file:// path is not executable."""


class PluginExitedError(PluginStartError):
    """The process exited before it printed its handshake."""


class HandshakeTimeoutError(PluginStartError):
    """The process printed no handshake line in time."""


class ProtocolMismatchError(PluginStartError):
    """The handshake line was unusable (version, network or protocol)."""


class PluginUnreachableError(PluginStartError):
    """A plugin's gRPC endpoint did not answer its health check."""


class PluginConfigError(PluginStartError):
    """The plugin rejected its configuration."""


class PluginStoppedError(PluginStartError):
    """The plugin was stopped while it was starting, or while an operation waited."""


class PluginNotLoadedError(PluginError):
    """No plugin is loaded under that slug."""


class PluginCallError(PluginError):
    """A hook call failed: plugin down, deadline exceeded, or the plugin raised."""

    def __init__(self, message: str, *, slug: str, hook: str, code: str) -> None:
        super().__init__(message)
        self.slug = slug
        self.hook = hook
        self.code = code


def exited_text(plugin: str, code: int | None, last_output: str, when: str = "") -> str:
    """The sentence for a plugin process that died: `plugin` names it ("/path" or "process 42"),
    `when` says at what point ("before the handshake"), `last_output` is its output's tail."""
    moment = f" {when}" if when else ""
    return f"plugin {plugin} exited with code {code}{moment}; last output: {last_output}"
