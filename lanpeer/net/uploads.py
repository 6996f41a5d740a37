"""What this host uploads: one session per (peer, game) while a peer pulls chunks from us.

Owns the ledger both chunk paths (QUIC and TCP bulk) report served bytes to, per-session rates
over a short window, the end of a session after it goes idle (one log line, a ``finished``
notice), and per-peer upload rates for ``peers``. Never serves anything; time is passed in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from lanpeer_proto import units

log = logging.getLogger("lanpeer.uploads")

#: A downloader asks for its next chunks within milliseconds; 10 s without one means it is
#: done with us (finished, cancelled, or gone to other sources).
IDLE_END = 10.0
#: Rates over the last 3 s: steady enough to read, short enough to show a stop.
RATE_WINDOW = 3.0
#: 200 peers x a few games each; past this the oldest idle session is ended early.
MAX_SESSIONS = 2048
#: Samples kept per session: a 4 MiB chunk every ms for 3 s is far past any link.
MAX_SAMPLES = 4096

UploadNotice = Literal["started", "finished"]


@dataclass(eq=False)
class UploadSession:
    peer_id: str
    game_id: str
    started: float  # monotonic
    since: float  # seconds since the epoch, for people
    last: float = 0.0
    bytes: int = 0
    _window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))

    def add(self, now: float, nbytes: int) -> None:
        self.last = now
        self.bytes += nbytes
        self._window.append((now, nbytes))

    def rate(self, now: float) -> float:
        recent = sum(n for t, n in self._window if t >= now - RATE_WINDOW)
        return recent / min(RATE_WINDOW, max(now - self.started, 0.25))

    @property
    def seconds(self) -> float:
        return max(self.last - self.started, 0.0)


Listener = Callable[[UploadNotice, UploadSession], None]


class UploadLedger:
    """``served`` after every chunk sent; ``sweep`` now and then ends idle sessions."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        names: Callable[[str], str] = lambda peer_id: "",
    ) -> None:
        self._clock, self._wall = clock, wall
        self.names = names  # peer_id -> display name (the node's peer table)
        self._sessions: dict[tuple[str, str], UploadSession] = {}
        self._listeners: list[Listener] = []
        self.total_bytes = 0

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def served(self, peer_id: str, game_id: str, nbytes: int) -> None:
        now = self._clock()
        key = (peer_id, game_id)
        session = self._sessions.get(key)
        if session is None:
            if len(self._sessions) >= MAX_SESSIONS:
                self._end(min(self._sessions.values(), key=lambda s: s.last))
            session = self._sessions[key] = UploadSession(peer_id, game_id, now, self._wall())
            self._notify("started", session)
        session.add(now, nbytes)
        self.total_bytes += nbytes

    async def run_sweeps(self) -> None:
        """Until cancelled: end idle sessions a few times per ``IDLE_END``."""
        while True:
            await asyncio.sleep(IDLE_END / 4)
            self.sweep()

    def sweep(self) -> None:
        now = self._clock()
        for session in [s for s in self._sessions.values() if now - s.last >= IDLE_END]:
            self._end(session)

    def sessions(self) -> list[UploadSession]:
        return sorted(self._sessions.values(), key=lambda s: (s.started, s.peer_id))

    def rate(self, session: UploadSession) -> float:
        return session.rate(self._clock())

    def peer_rate(self, peer_id: str) -> float:
        now = self._clock()
        return sum(s.rate(now) for s in self._sessions.values() if s.peer_id == peer_id)

    def end_all(self) -> None:
        """At shutdown: every session ends (and says so)."""
        for session in list(self._sessions.values()):
            self._end(session)

    def _end(self, session: UploadSession) -> None:
        self._sessions.pop((session.peer_id, session.game_id), None)
        speed = units.rate(session.bytes / session.seconds) if session.seconds > 0 else "-"
        who = self.names(session.peer_id) or session.peer_id[:8]
        log.info(
            "upload of %s to %s (%s) done: %s in %.1f s (%s)", session.game_id, who,
            session.peer_id[:8], units.size(session.bytes), session.seconds, speed,
        )  # fmt: skip
        self._notify("finished", session)

    def _notify(self, notice: UploadNotice, session: UploadSession) -> None:
        for listener in list(self._listeners):
            try:
                listener(notice, session)
            except Exception:
                log.exception("upload listener failed")
