"""Operation history: finished and failed operations stay visible (SPEC §9a ``ops --all``).

Owns a bounded record of every finished operation (from ``FinishedEvent``), which failures
still stand (a failure stays in plain ``ops`` until that game's next success), the hint for a
failure whose cause is known, and one log line per finished operation. Never runs anything.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from lanpeer_proto import units
from lanpeer_proto.control import FinishedEvent, OperationInfo

log = logging.getLogger("lanpeer.operations")

# A party's worth of operations (a few per game of a 1,000-game library is far more than a
# night brings): old entries fall off; standing failures are kept apart and never fall off.
HISTORY_LIMIT = 500


@dataclass(frozen=True)
class Finished:
    event: FinishedEvent
    finished_at: float  # seconds since the epoch
    hint: str | None

    @property
    def cancelled(self) -> bool:
        return is_cancel(self.event)

    def info(self) -> OperationInfo:
        e = self.event
        return OperationInfo(
            game_id=e.game_id,
            kind=e.kind,
            state="done" if e.ok else ("cancelled" if self.cancelled else "failed"),
            lane="download" if e.kind == "download" else "general",
            bytes_done=e.bytes,
            bytes_total=e.bytes if e.ok else 0,
            sources=list(e.peers_used),
            finished_at=self.finished_at,
            ok=e.ok,
            error=e.error,
            hint=self.hint,
        )


#: (what the error says, what to do): causes a person can act on, most specific first.
_HINTS: tuple[tuple[Callable[[str, str], bool], str], ...] = (
    (lambda code, text: "read-only file system" in text,
     "the game root is read-only: remount it read-write, or pick another --games root"),
    (lambda code, text: code == "disk_full" or "no space left" in text,
     "free space on the game root (`peer-cli doctor` shows it), then retry"),
    (lambda code, text: "permission denied" in text,
     "lanpeerd cannot write there: fix the owner or mode of the game root"),
    (lambda code, text: "party key" in text or "party-key" in text,
     "every host needs the same --party-key (or none)"),
    (lambda code, text: code in ("bad_archive", "unsafe_archive", "archive_bomb"),
     "the game's archives are damaged or unsafe: remove it and download it again, or ask "
     "its owner for a good copy"),
    (lambda code, text: code == "encrypted_archive",
     "ask the game's owner for an unencrypted copy"),
    (lambda code, text: "stopped hashing" in text or "before it finished hashing" in text,
     "check lanpeerd on that host (`peer-cli doctor` there), then download again"),
    (lambda code, text: "hashing" in text,
     "the seeder is still hashing the game: retry when `peer-cli games` shows it ready"),
    (lambda code, text: "no connected peer" in text or "no sources" in text,
     "no peer offers it now: `peer-cli peers` and `peer-cli doctor` show who is connected"),
)  # fmt: skip


def is_cancel(event: FinishedEvent) -> bool:
    """A cancelled operation ends not ok with the error "cancelled" (its final state)."""
    return not event.ok and (event.error or "").strip().lower() == "cancelled"


def hint_for(error_code: str | None, error: str | None) -> str | None:
    code, text = error_code or "", (error or "").lower()
    return next((hint for matches, hint in _HINTS if matches(code, text)), None)


class OperationHistory:
    """Feed it every ``FinishedEvent``; read ``standing_failures`` and ``entries``."""

    def __init__(self, limit: int = HISTORY_LIMIT, clock: Callable[[], float] = time.time) -> None:
        self._entries: deque[Finished] = deque(maxlen=limit)
        self._failures: dict[str, Finished] = {}  # game -> its failure since its last success
        self._clock = clock

    def record(self, event: FinishedEvent) -> None:
        code = event.error_code.value if event.error_code else None
        quiet = event.ok or is_cancel(event)
        finished = Finished(event, self._clock(), None if quiet else hint_for(code, event.error))
        self._entries.append(finished)
        if event.ok:
            self._failures.pop(event.game_id, None)
        elif not is_cancel(event):
            self._failures[event.game_id] = finished
        log.info("%s", describe(finished))

    def entries(self) -> list[OperationInfo]:
        """Every remembered finished operation, oldest first."""
        return [entry.info() for entry in self._entries]

    def standing_failures(self) -> list[Finished]:
        """Failures not yet followed by a success of the same game, oldest first."""
        return sorted(self._failures.values(), key=lambda f: f.finished_at)


def describe(finished: Finished) -> str:
    """The one log line of a finished operation."""
    e = finished.event
    if not e.ok:
        hint = f" ({finished.hint})" if finished.hint else ""
        return f"{e.kind} of {e.game_id} failed: {e.error}{hint}"
    speed = units.rate(e.bytes / e.seconds) if e.seconds > 0 else "-"
    peers = f" from {len(e.peers_used)} peer(s)" if e.peers_used else ""
    return (
        f"{e.kind} of {e.game_id} done: {units.size(e.bytes)} in {e.seconds:.1f} s ({speed}){peers}"
    )
