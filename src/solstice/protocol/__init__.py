"""Wire definitions: the Solstice plugin protocol, go-plugin's services and the handshake.

Generated modules are re-exported under short names so callers never spell the
generated paths: ``pb`` and ``pb_grpc`` for ``solstice.plugin.v1``, ``gp`` and
``gp_grpc`` for go-plugin's ``plugin`` package.
"""

from solstice.protocol.goplugin import goplugin_pb2 as gp
from solstice.protocol.goplugin import goplugin_pb2_grpc as gp_grpc
from solstice.protocol.plugin.v1 import plugin_pb2 as pb
from solstice.protocol.plugin.v1 import plugin_pb2_grpc as pb_grpc

__all__ = ["gp", "gp_grpc", "pb", "pb_grpc"]
