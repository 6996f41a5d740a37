"""Progress of operations as people and ``peer-cli ops`` see it: rates, ETA, status records.

Plain dataclasses and a sliding-window rate meter. Never does I/O; time is passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from lanpeer.download.hash_wait import PeerHashing


class RateWindow:
    """Bytes per second over the last ``window`` seconds."""

    def __init__(self, window: float = 3.0) -> None:
        # Three seconds: steady enough for an ETA, short enough to show a peer that died.
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()
        self._sum = 0
        self._start: float | None = None

    def add(self, now: float, nbytes: int) -> None:
        if self._start is None:
            self._start = now
        self._samples.append((now, nbytes))
        self._sum += nbytes
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        if self._start is None:
            return 0.0
        span = min(self.window, max(now - self._start, 0.25))
        return self._sum / span

    def _trim(self, now: float) -> None:
        while self._samples and self._samples[0][0] < now - self.window:
            self._sum -= self._samples.popleft()[1]


@dataclass(slots=True)
class TransferCounters:
    """The one set of counters of a transfer: the scheduler and ``GameDownload`` both add here."""

    bytes_total: int = 0  # bytes of the files this download stages
    bytes_resumed: int = 0  # verified before this run (resume)
    bytes_copied: int = 0  # delta: copied from the old version on local disk
    bytes_fetched: int = 0  # verified bytes that crossed the network in this run
    chunks_fetched: int = 0  # verified and written
    chunks_copied: int = 0
    rejected: int = 0  # chunks that failed verification
    redundant: int = 0  # endgame copies that arrived after the chunk was verified
    failures: int = 0  # failed requests (any peer)
    requests: int = 0
    chunks_by_peer: dict[str, int] = field(default_factory=dict)
    bytes_by_peer: dict[str, int] = field(default_factory=dict)  # verified bytes per source
    bytes_from_partial: int = 0  # of bytes_fetched: served by other downloaders (swarm)

    @property
    def bytes_done(self) -> int:
        return self.bytes_resumed + self.bytes_copied + self.bytes_fetched


@dataclass(frozen=True, slots=True)
class TransferSnapshot:
    """A transfer's progress at one instant, as operations and views read it."""

    bytes_done: int
    bytes_total: int
    rate: float  # bytes/s over the rate window
    sources: tuple[str, ...]
    peer_rates: dict[str, float]
    partial_sources: tuple[str, ...] = ()  # of sources: other downloaders (SPEC §7a)


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Emitted to listeners; ``event`` is "progress", "state" or "finished"."""

    event: str
    game_id: str
    kind: str
    state: str
    bytes_done: int
    bytes_total: int
    rate: float
    eta: float | None
    peers: dict[str, float] = field(default_factory=dict)  # peer_id -> bytes/s
    error: str | None = None
    ok: bool | None = None
    seconds: float | None = None
    peers_used: list[str] = field(default_factory=list)
    bytes_from_partial: int = 0  # fetched bytes other downloaders served (SPEC §7a)
    bytes_by_peer: dict[str, int] = field(default_factory=dict)  # fetched bytes per source
    bytes_fetched: int = 0  # of bytes_done, what crossed the network (the rest: delta, resume)
    reason: str | None = None  # why a stalled operation waits, in words
    hashing: PeerHashing | None = None  # waiting for a seeder to hash the game: how far it got


@dataclass(frozen=True, slots=True)
class OperationStatus:
    """One row of ``peer-cli ops`` (SPEC §9 field names)."""

    game_id: str
    kind: str
    state: str
    lane: str
    queue_position: int | None
    bytes_done: int
    bytes_total: int
    rate: float
    eta: float | None
    sources: list[str]
    peer_rates: dict[str, float] = field(default_factory=dict)
    partial_sources: list[str] = field(default_factory=list)  # of sources: other downloaders
    error: str | None = None
    reason: str | None = None  # why it waits (stalled), in words
    hashing: PeerHashing | None = None  # waiting for a seeder to hash the game: how far it got


def eta_seconds(remaining: int, rate: float) -> float | None:
    if remaining <= 0:
        return 0.0
    return remaining / rate if rate > 0 else None
