"""The peer network: identity, QUIC sessions, discovery, library sync, chunk serving.

The daemon uses ``Identity.load_or_create(state_dir)`` and ``PeerNode(identity, library, ...)``;
the download engine uses the node as its ``SourceDirectory`` (``sources_for``,
``wait_sources_changed``) and the ``PeerChunkSource`` objects it returns.
"""

from lanpeer.net.errors import ChunkRefused, HandshakeRefused, PeerUnavailable
from lanpeer.net.fetching import PeerChunkSource
from lanpeer.net.identity import Identity, IdentityError
from lanpeer.net.library_view import LibraryView
from lanpeer.net.node import DEFAULT_PORT, NodeTimings, PeerNode
from lanpeer.net.peers import PeerEvent, PeerEventKind, PeerInfo
from lanpeer.net.quic import QuicSettings
from lanpeer.net.session import SessionLimits

__all__ = [
    "DEFAULT_PORT",
    "ChunkRefused",
    "HandshakeRefused",
    "Identity",
    "IdentityError",
    "LibraryView",
    "NodeTimings",
    "PeerChunkSource",
    "PeerEvent",
    "PeerEventKind",
    "PeerInfo",
    "PeerNode",
    "PeerUnavailable",
    "QuicSettings",
    "SessionLimits",
]
