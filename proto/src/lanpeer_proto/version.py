"""Protocol version and ALPN.

Compatibility rule: peers with the same major version talk; a message type
unknown within the same major version is logged and ignored (so minor versions
may add messages and optional fields); a different major version is refused in
the handshake with ``ErrorCode.UNSUPPORTED_VERSION``.
"""

from __future__ import annotations

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0
PROTOCOL_VERSION = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
ALPN = "lanpeer/1"

#: Features a peer may list in ``Hello.features``.
FEATURE_TCP_BULK = "tcp-bulk"
FEATURE_DELTAS = "deltas"
#: Understands GetHaves/Haves (SPEC §7a): may ask for and answer partial-source have-sets.
FEATURE_SWARM = "swarm/1"
#: Answers GetHashStatus: how far its hashing of a game it advertises unhashed has got.
FEATURE_HASH_STATUS = "hash-status/1"


def is_compatible(major: int) -> bool:
    """True when a peer announcing ``major`` can talk to us."""
    return major == PROTOCOL_MAJOR
