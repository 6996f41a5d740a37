"""The peer table: what we know about each peer, keyed by its proven peer_id.

Owns peer records (listener address, name, version, library copy, last_seen, sessions), the
rules for applying snapshots and deltas, and stale expiry. Plain data and synchronous code:
never does I/O; the node feeds it and turns its results into events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from lanpeer_proto.messages import MAX_GAMES, GameSummary, LibraryDelta, LibrarySnapshot

from lanpeer.errors import LanpeerError
from lanpeer.net.handshake import RemoteFacts
from lanpeer.net.session import PeerLink

#: Game records we keep for all peers together: a party of 50 peers sharing 1,000 games each,
#: at ~1 KiB a record ~50 MiB. Fresh identities answering syncs with huge snapshots cannot
#: grow the table past it: stale peers' records go first, then a copy is refused.
MAX_LIBRARY_RECORDS = 50_000
#: Peer records, connected or not (a vanished peer's record waits out the stale timeout).
MAX_PEERS = 1_024


class LibraryTooLarge(LanpeerError):
    """A peer's library copy would go over the record caps; we keep the copy we had."""

    code = "library_too_large"


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
    rtt: float | None = None  # smoothed QUIC round trip of the live session, seconds


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

    @property
    def rtt(self) -> float | None:
        """The live session's smoothed round-trip time; None: not connected or not measured."""
        link = self.live_session()
        return link.rtt if link is not None else None

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
            self.rtt,
        )


class PeerTable:
    def __init__(
        self, max_records: int = MAX_LIBRARY_RECORDS, max_per_peer: int = MAX_GAMES,
        max_peers: int = MAX_PEERS,
    ) -> None:  # fmt: skip
        self._records: dict[str, PeerRecord] = {}
        self._max_records = max_records
        self._max_per_peer = max_per_peer
        self._max_peers = max_peers
        self._held = 0  # game records over all peers

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
            if len(self._records) >= self._max_peers:
                self._evict_stale(room_for_peer=True)
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
        self._make_room(record, len(snapshot.games))
        self._held -= len(record.games)
        record.games = {game.id: game for game in snapshot.games}
        self._held += len(record.games)
        record.library_rev, record.library_digest = snapshot.library_rev, snapshot.library_digest
        return changed

    def apply_delta(self, peer_id: str, delta: LibraryDelta) -> bool:
        """Apply a delta that starts at the rev we hold; False when it does not (ask a snapshot)."""
        record = self._records.get(peer_id)
        if record is None or record.library_rev != delta.from_rev:
            return False
        removed = set(delta.removed)
        after = {**record.games, **{g.id: g for g in [*delta.added, *delta.updated]}}
        kept = {game_id: game for game_id, game in after.items() if game_id not in removed}
        self._make_room(record, len(kept))
        self._held += len(kept) - len(record.games)
        record.games = kept
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
            self._held -= len(self._records.pop(peer_id).games)
        return gone

    @property
    def library_records(self) -> int:
        """Game records held over all peers (bounded by ``max_records``)."""
        return self._held

    def _make_room(self, record: PeerRecord, count: int) -> None:
        """Room for ``record`` to hold ``count`` games, dropping stale peers' copies (oldest
        first) when the total would go over; LibraryTooLarge when that is not enough."""
        if count > self._max_per_peer:
            raise LibraryTooLarge(f"{count} games from one peer, over the {self._max_per_peer} cap")
        while self._held - len(record.games) + count > self._max_records:
            if not self._evict_stale(keep=record):
                raise LibraryTooLarge(
                    f"{count} more games would pass the {self._max_records}-record cap"
                )

    def _evict_stale(self, *, keep: PeerRecord | None = None, room_for_peer: bool = False) -> bool:
        """Drop the games of the longest-unseen disconnected peer; False when there is none.

        With ``room_for_peer`` the whole record goes (the peer table is full)."""
        idle = [r for r in self._records.values() if not r.connected and r is not keep]
        if not room_for_peer:
            idle = [r for r in idle if r.games]
        if not idle:
            return False
        oldest = min(idle, key=lambda r: r.last_seen)
        self._held -= len(oldest.games)
        if room_for_peer:
            del self._records[oldest.peer_id]
        else:
            oldest.games, oldest.library_rev, oldest.library_digest = {}, None, b""
        return True
