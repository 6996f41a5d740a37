"""Errors the peer network raises to its callers (download engine, daemon).

Owns the translation target for aioquic / socket / zeroconf failures. Never carries tracebacks
across the wire: remote refusals arrive as ``ChunkRefused`` with the peer's wire code.
"""

from __future__ import annotations

from lanpeer_proto.errors import ErrorCode

from lanpeer.errors import LanpeerError


class PeerUnavailable(LanpeerError):
    """The peer is not connected, went away mid-request, or did not answer in time."""

    code = "peer_unavailable"


class ChunkRefused(LanpeerError):
    """The peer answered a request with a typed ``Error``; ``wire_code`` says why."""

    code = "refused"

    def __init__(self, wire_code: ErrorCode, message: str) -> None:
        super().__init__(f"peer refused: {wire_code.value}: {message}")
        self.wire_code = wire_code
        self.message = message

    @classmethod
    def unexpected(cls, got: str) -> ChunkRefused:
        return cls(ErrorCode.UNEXPECTED, f"the peer answered with {got}")


class ForgedManifest(ChunkRefused):
    """The peer sent a manifest whose content does not hash to its ``manifest_hash`` field:
    hostile or broken. The fetcher asks that peer for no manifest again while it is known.
    ``code`` is what layers that do not import net match on (``download.resolve``)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.BAD_MESSAGE, message)


class HandshakeRefused(LanpeerError):
    """The handshake failed: bad proof, party key, version. The connection is dropped."""

    code = "handshake_refused"

    def __init__(self, wire_code: ErrorCode, message: str) -> None:
        super().__init__(f"{wire_code.value}: {message}")
        self.wire_code = wire_code
        self.message = message


class DialledSelf(HandshakeRefused):
    """A dialled address answered with our own peer_id (a static peer pointing at us)."""


class ListenError(LanpeerError):
    """The node cannot bind its QUIC (or bulk) listener; the message says what to change."""

    code = "listen_failed"
