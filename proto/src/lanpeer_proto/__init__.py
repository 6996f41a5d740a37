"""lanpeer_proto: the lanpeer wire protocol, sans-IO.

No sockets, no asyncio, no clock, no files: bytes and ``now`` values in,
messages and deadlines out. See ARCHITECTURE.md for the compatibility rule.
"""

from lanpeer_proto.errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from lanpeer_proto.version import ALPN, PROTOCOL_MAJOR, PROTOCOL_MINOR, PROTOCOL_VERSION

__all__ = [
    "ALPN",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "PROTOCOL_VERSION",
    "ErrorCode",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]
