"""What a ``PeerSession`` hands back to the glue: steps, events, and its timer settings.

Plain frozen dataclasses; no behaviour. Kept apart so the session module holds only the
table and its actions.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import Hello, HelloAck, Message


@dataclass(frozen=True)
class SessionTimers:
    """Timeouts in seconds. A LAN handshake takes milliseconds; these allow a loaded host."""

    handshake: float = 10.0  # Hello to AuthOk, both sides
    ping_interval: float = 15.0  # ping after this long without receiving anything
    stale: float = 45.0  # three missed pings: the peer vanished (mDNS would take 1125 s)
    close: float = 2.0  # how long CLOSING waits for the transport to end


# Events for the glue.
@dataclass(frozen=True)
class HandshakeComplete:
    remote: Hello | HelloAck  # the peer's facts: its Hello (we are server) or HelloAck (client)
    shared_features: frozenset[str]

    @property
    def peer_id(self) -> str:
        return self.remote.peer_id


@dataclass(frozen=True)
class MessageReceived:
    message: Message  # a READY-state message the session does not own


@dataclass(frozen=True)
class SessionClosed:
    reason: str
    by_peer: bool


@dataclass(frozen=True)
class SessionFailed:
    code: ErrorCode
    reason: str
    by_peer: bool  # True: the peer sent Error; False: we refused it or it timed out


SessionEvent = HandshakeComplete | MessageReceived | SessionClosed | SessionFailed


@dataclass(frozen=True)
class Step:
    """Outcome of one call: messages to send (in order) and events for the glue."""

    send: tuple[Message, ...] = ()
    events: tuple[SessionEvent, ...] = ()
