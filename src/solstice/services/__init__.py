"""The host service API: what plugins may ask the platform for, under the scopes operators approve.

The runtime supplies the backends (`Catalog`, `KvStore`, `EventSink`): the control plane its
database, an edge what it keeps locally.
"""

from solstice.services.backends import Catalog, EventSink, KvEntry, KvFull, KvStore, LlmCaller, PluginGone
from solstice.services.dispatch import SCOPE_OF, PluginServices
from solstice.services.kv import KvService

__all__ = [
    "SCOPE_OF",
    "Catalog",
    "EventSink",
    "KvEntry",
    "KvFull",
    "KvService",
    "KvStore",
    "LlmCaller",
    "PluginGone",
    "PluginServices",
]
