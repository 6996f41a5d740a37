"""A download waiting for its seeders to hash the game: their progress, and when to give up.

Owns the rule (SPEC §9a ``hashing``): keep waiting while a seeder's hashing moves; fail, naming
the seeder, once every seeder that can say how far it got has moved no byte for
``HashWaitLimits.stall``, or once no connected peer has offered the game for
``HashWaitLimits.gone``. A seeder that cannot say (no feature ``hash-status/1``) is waited for
as before: without an end. Pure: the caller passes the time and what the peers answered.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanpeer_proto import units
from lanpeer_proto.messages import HashStatus

from lanpeer.errors import LanpeerError


@dataclass(frozen=True)
class HashWaitLimits:
    #: How often the waiting download asks each hashing seeder how far it got (one small
    #: request per seeder; a finished hash wakes the wait at once through the library sync).
    poll: float = 1.0
    #: No byte hashed for this long (of this game or, while it waits its turn, of any other
    #: game on that host): that seeder stopped. A cold disk reads ~100 MB/s, so a minute of
    #: nothing is not a slow disk.
    stall: float = 60.0
    #: No connected peer offers the game for this long: its seeders went away (a reconnect
    #: after a network blip takes a few seconds).
    gone: float = 15.0


HASH_WAIT_LIMITS = HashWaitLimits()


class SeederStalledError(LanpeerError):
    """The seeders of a game stopped hashing it or went away before it was ready."""

    code = "seeder_stalled"


@dataclass(frozen=True)
class PeerHashing:
    """How far one seeder's hashing of the waited game has got (what ``ops`` shows)."""

    peer_id: str
    name: str
    hashed_bytes: int
    total_bytes: int
    queued: bool = False  # nothing of this game yet, while the host hashes another one

    @property
    def label(self) -> str:
        return f"{self.name} ({self.peer_id[:8]})" if self.name else self.peer_id[:8]

    def describe(self) -> str:
        if self.queued:
            return f"waiting for {self.label} to hash it: queued behind its other games"
        percent = 100 * self.hashed_bytes // self.total_bytes if self.total_bytes else 0
        done, total = units.size(self.hashed_bytes), units.size(self.total_bytes)
        return f"waiting for {self.label} to hash it: {percent} % ({done} of {total})"


@dataclass
class _Seen:
    hashing: PeerHashing
    host_bytes: int
    moved_at: float  # when its hashed bytes (this game's or the host's) last grew


class HashWatch:
    """What the waiting download knows of its seeders' hashing; feed it, then ask ``verdict``."""

    def __init__(self, game_id: str, limits: HashWaitLimits, now: float) -> None:
        self.game_id = game_id
        self.limits = limits
        self._seen: dict[str, _Seen] = {}  # seeders that said how far they got
        self._silent: dict[str, str] = {}  # peer id -> name: seeders that cannot say
        self._offered_at = now  # when a connected peer last offered the game
        self._last_offerers: dict[str, str] = {}

    def offered_by(self, peers: dict[str, str], now: float) -> None:
        """The connected peers (id -> name) offering the game, not hashed yet, right now."""
        if peers:
            self._offered_at = now
            self._last_offerers = dict(peers)
        for gone in self._seen.keys() - peers.keys():
            del self._seen[gone]
        for gone in self._silent.keys() - peers.keys():
            del self._silent[gone]

    def saw(self, peer_id: str, name: str, status: HashStatus | None, now: float) -> bool:
        """A seeder's answer (None: it cannot say). True when it shows new progress."""
        if status is None:
            self._silent[peer_id] = name
            return False
        self._silent.pop(peer_id, None)
        queued = status.hashed_bytes == 0 and not status.hashed
        hashing = PeerHashing(peer_id, name, status.hashed_bytes, status.total_bytes, queued)
        before = self._seen.get(peer_id)
        moved = before is None or (
            status.hashed_bytes > before.hashing.hashed_bytes
            or status.host_hashed_bytes > before.host_bytes
        )
        moved_at = now if moved or before is None else before.moved_at
        self._seen[peer_id] = _Seen(hashing, status.host_hashed_bytes, moved_at)
        return moved or before is None or before.hashing != hashing

    def best(self) -> PeerHashing | None:
        """The seeder furthest along (its progress is what the download shows)."""
        seen = [s.hashing for s in self._seen.values()]
        return max(seen, key=_fraction) if seen else None

    def reason(self) -> str:
        best = self.best()
        if best is not None:
            return best.describe()
        if self._silent:
            names = ", ".join(sorted(_label(p, n) for p, n in self._silent.items()))
            return f"waiting for {names} to finish hashing it (that peer cannot say how far)"
        return "no connected peer offers it now; waiting for its seeder to come back"

    def verdict(self, now: float) -> SeederStalledError | None:
        """Why the wait is over, or None to keep waiting."""
        if not self._seen and not self._silent:
            if now - self._offered_at < self.limits.gone:
                return None
            names = ", ".join(sorted(_label(p, n) for p, n in self._last_offerers.items()))
            return SeederStalledError(
                f"{names or 'its seeder'} went away before it finished hashing {self.game_id} "
                f"(no connected peer has offered it for {self.limits.gone:.0f} s)"
            )
        if self._silent or any(now - s.moved_at < self.limits.stall for s in self._seen.values()):
            return None
        stalled = sorted((s.hashing for s in self._seen.values()), key=lambda h: h.peer_id)
        where = ", ".join(
            f"{h.label} before it started" if h.queued else f"{h.label} at {_percent(h)} %"
            for h in stalled
        )
        return SeederStalledError(
            f"its seeders stopped hashing {self.game_id} ({where}): no progress for "
            f"{self.limits.stall:.0f} s"
        )


def _fraction(hashing: PeerHashing) -> float:
    return hashing.hashed_bytes / hashing.total_bytes if hashing.total_bytes else 0.0


def _percent(hashing: PeerHashing) -> int:
    return int(100 * _fraction(hashing))


def _label(peer_id: str, name: str) -> str:
    return f"{name} ({peer_id[:8]})" if name else peer_id[:8]
