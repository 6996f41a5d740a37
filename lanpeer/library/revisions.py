"""Library revisions: ``library_rev``, ``library_digest`` and deltas between revs (SPEC §6).

Owns the rule "the rev moves only when the advertised library really changes" and a bounded
history of changes. Pure: no I/O, no clock; the caller persists ``to_bytes()`` and
``history_to_bytes()`` (so peers still get deltas after a restart).
Never answers a delta it cannot prove complete: a ``from_rev`` older than the history -> None.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import blake3
from lanpeer_proto.codec import decode, encode
from lanpeer_proto.messages import GameSummary, LibraryDelta, LibrarySnapshot

#: Revs a peer may lag behind and still get a delta. A party rarely sees more than a few
#: changes a minute, so 256 revs cover a peer that was away for a long while.
DEFAULT_HISTORY = 256
_ZERO = bytes(32)


@dataclass(frozen=True)
class _Change:
    """What moved from ``rev - 1`` to ``rev``: ids that appeared, changed and went away."""

    rev: int
    added: frozenset[str]
    updated: frozenset[str]
    removed: frozenset[str]


def library_digest(games: Mapping[str, GameSummary]) -> bytes:
    """BLAKE3 over the canonical encoding of the advertised summaries sorted by id."""
    ordered = [games[g] for g in sorted(games)]
    snapshot = LibrarySnapshot(library_rev=0, library_digest=_ZERO, games=ordered)
    return blake3.blake3(encode(snapshot)).digest()


class RevisionLog:
    """The advertised library, its rev and the recent history of changes."""

    def __init__(
        self,
        rev: int = 0,
        games: Mapping[str, GameSummary] | None = None,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        self.rev = rev
        self.games: dict[str, GameSummary] = dict(games or {})
        self.digest = library_digest(self.games)
        self._history: deque[_Change] = deque(maxlen=history)

    def apply(self, games: Mapping[str, GameSummary]) -> bool:
        """Make ``games`` the advertised library; bump the rev if anything differs."""
        added = frozenset(games.keys() - self.games.keys())
        removed = frozenset(self.games.keys() - games.keys())
        updated = frozenset(
            g for g in games.keys() & self.games.keys() if games[g] != self.games[g]
        )
        if not (added or removed or updated):
            return False
        self.rev += 1
        self.games = dict(games)
        self.digest = library_digest(self.games)
        self._history.append(_Change(self.rev, added, updated, removed))
        return True

    def snapshot(self) -> list[GameSummary]:
        return [self.games[g] for g in sorted(self.games)]

    def delta_since(self, from_rev: int) -> LibraryDelta | None:
        """The coalesced changes from ``from_rev`` to now, or None if the history does not reach."""
        if from_rev > self.rev:
            return None
        changes = [c for c in self._history if c.rev > from_rev]
        if len(changes) != self.rev - from_rev:
            return None
        existed: dict[str, bool] = {}  # did the id exist at from_rev?
        for change in changes:
            for game_id in change.added:
                existed.setdefault(game_id, False)
            for game_id in change.updated | change.removed:
                existed.setdefault(game_id, True)
        added: list[GameSummary] = []
        updated: list[GameSummary] = []
        removed: list[str] = []
        for game_id in sorted(existed):
            now = self.games.get(game_id)
            if now is None and existed[game_id]:
                removed.append(game_id)
            elif now is not None:
                (updated if existed[game_id] else added).append(now)
        return LibraryDelta(
            from_rev=from_rev,
            to_rev=self.rev,
            library_digest=self.digest,
            added=added,
            updated=updated,
            removed=removed,
        )

    def history_to_bytes(self) -> bytes:
        """The change history as JSON: ``[[rev, added, updated, removed], ...]``."""
        rows = [
            [c.rev, sorted(c.added), sorted(c.updated), sorted(c.removed)] for c in self._history
        ]
        return json.dumps(rows, separators=(",", ":")).encode()

    def restore_history(self, data: bytes) -> bool:
        """Take a persisted history back if it ends exactly at this rev; else keep none."""
        try:
            changes = [
                _Change(int(rev), frozenset(a), frozenset(u), frozenset(r))
                for rev, a, u, r in json.loads(data)
            ]
        except (ValueError, TypeError):
            return False
        revs = [c.rev for c in changes]
        if not changes or revs != list(range(revs[0], revs[0] + len(revs))) or revs[-1] != self.rev:
            return False
        self._history.extend(changes)
        return True

    def to_bytes(self) -> bytes:
        """The persisted form of the advertised library: a LibrarySnapshot message."""
        return encode(
            LibrarySnapshot(library_rev=self.rev, library_digest=self.digest, games=self.snapshot())
        )

    @classmethod
    def from_bytes(cls, data: bytes, history: int = DEFAULT_HISTORY) -> RevisionLog:
        message = decode(data)
        if not isinstance(message, LibrarySnapshot):
            raise TypeError(f"persisted library is a {message.type}, not a snapshot")
        return cls(message.library_rev, {g.id: g for g in message.games}, history)


def apply_delta(games: Mapping[str, GameSummary], delta: LibraryDelta) -> dict[str, GameSummary]:
    """What a receiving peer does with a delta (used by tests and by net)."""
    result = dict(games)
    for game_id in delta.removed:
        result.pop(game_id, None)
    for summary in [*delta.added, *delta.updated]:
        result[summary.id] = summary
    return result
