"""The peer table: what we know about each peer, keyed by its proven peer_id.

Owns peer records (listener address, name, version, library copy, last_seen, sessions), the
rules for applying snapshots and deltas, and stale expiry. Plain data and synchronous code:
never does I/O; the node feeds it and turns its results into events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from lanpeer_proto.messages import GameSummary, LibraryDelta, LibrarySnapshot

from lanpeer.net.handshake import RemoteFacts
from lanpeer.net.session import PeerLink


class PeerEventKind(StrEnum):
    UP = "up"  # a session to the peer was authenticated
    DOWN = "down"  # its last session ended
    LIBRARY = "library"  # our copy of its library changed
    REMOVED = "removed"  # stale: dropped from the table


@dataclass(frozen=True)
class PeerEvent:
    kind: PeerEventKind
    peer_id: str
    name: str = ""
    address: tuple[str, int] = ("", 0)
    library_rev: int = 0


@dataclass(frozen=True)
class PeerInfo:
    """A read-only view of one peer for the daemon and the CLI."""

    peer_id: str
    name: str
    address: tuple[str, int]
    proto_ver: str
    library_rev: int
    last_seen: float  # time.time() of the last message
    games: dict[str, GameSummary]
    connected: bool


@dataclass
class PeerRecord:
    peer_id: str
    name: str
    address: tuple[str, int]  # the peer's QUIC listener, never a source port
    proto_ver: str
    library_rev: int | None = None  # rev of our copy; None until the first sync
    library_digest: bytes = b""
    games: dict[str, GameSummary] = field(default_factory=dict)
    sessions: list[PeerLink] = field(default_factory=list)
    last_seen: float = field(default_factory=time.monotonic)

    @property
    def connected(self) -> bool:
        return any(s.is_open for s in self.sessions)

    def live_session(self) -> PeerLink | None:
        """The newest open session (requests go there)."""
        return next((s for s in reversed(self.sessions) if s.is_open), None)

    def info(self) -> PeerInfo:
        seen = max([self.last_seen, *(s.last_seen for s in self.sessions)])
        wall = time.time() - (time.monotonic() - seen)
        return PeerInfo(
            self.peer_id,
            self.name,
            self.address,
            self.proto_ver,
            self.library_rev or 0,
            wall,
            dict(self.games),
            self.connected,
        )


class PeerTable:
    def __init__(self) -> None:
        self._records: dict[str, PeerRecord] = {}

    def get(self, peer_id: str) -> PeerRecord | None:
        return self._records.get(peer_id)

    def records(self) -> list[PeerRecord]:
        return list(self._records.values())

    def session_up(self, session: PeerLink, facts: RemoteFacts, address: tuple[str, int]) -> bool:
        """Record an authenticated session; True when the peer was not connected before.

        A known peer_id at a new address is updated in place.
        """
        record = self._records.get(facts.peer_id)
        was_connected = record is not None and record.connected
        if record is None:
            record = PeerRecord(facts.peer_id, facts.name, address, facts.proto_ver)
            self._records[facts.peer_id] = record
        record.name, record.address, record.proto_ver = facts.name, address, facts.proto_ver
        record.sessions = [s for s in record.sessions if s.is_open] + [session]
        record.last_seen = time.monotonic()
        return not was_connected

    def session_down(self, session: PeerLink) -> bool:
        """Forget a finished session; True when it was the peer's last one."""
        record = self._records.get(session.peer_id)
        if record is None or session not in record.sessions:
            return False
        record.sessions.remove(session)
        return not record.connected

    def touch(self, peer_id: str, when: float) -> None:
        record = self._records.get(peer_id)
        if record is not None:
            record.last_seen = max(record.last_seen, when)

    def apply_snapshot(self, peer_id: str, snapshot: LibrarySnapshot) -> bool:
        record = self._records.get(peer_id)
        if record is None:
            return False
        changed = record.library_digest != snapshot.library_digest or record.library_rev is None
        record.games = {game.id: game for game in snapshot.games}
        record.library_rev, record.library_digest = snapshot.library_rev, snapshot.library_digest
        return changed

    def apply_delta(self, peer_id: str, delta: LibraryDelta) -> bool:
        """Apply a delta that starts at the rev we hold; False when it does not (ask a snapshot)."""
        record = self._records.get(peer_id)
        if record is None or record.library_rev != delta.from_rev:
            return False
        for game in [*delta.added, *delta.updated]:
            record.games[game.id] = game
        for game_id in delta.removed:
            record.games.pop(game_id, None)
        record.library_rev, record.library_digest = delta.to_rev, delta.library_digest
        return True

    def expire(self, now: float, stale_after: float) -> list[str]:
        """Drop peers with no open session and no message for ``stale_after`` seconds."""
        gone = [
            r.peer_id
            for r in self._records.values()
            if not r.connected and now - r.last_seen > stale_after
        ]
        for peer_id in gone:
            del self._records[peer_id]
        return gone
