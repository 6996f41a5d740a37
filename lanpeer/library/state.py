"""The library's in-memory view: records, catalog, busy games, unavailable roots.

Owns the rules derived from that view: what is advertised (SPEC §6: in the catalog, downloaded,
not busy), what may be served to a peer (SPEC §4), what still needs hashing and how a game looks
to the local user. Lives on the event loop; pure and synchronous: never does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import GameSummary

from lanpeer.library.catalog import CatalogEntry
from lanpeer.library.errors import ServeRefused
from lanpeer.library.index import GameRecord
from lanpeer.library.scanner import HashProgress


@dataclass(frozen=True)
class LocalGame:
    """One game dir on this host, whatever its state."""

    id: str
    name: str
    version: str | None
    downloaded: bool
    installed: bool
    local_only: bool
    size: int
    root: Path
    path: Path
    manifest_hash: bytes | None
    hashed_bytes: int  # hashing progress: bytes done of ``hash_total`` (0/0 when idle)
    hash_total: int
    in_catalog: bool
    busy: bool
    root_available: bool


@dataclass
class LibraryState:
    records: dict[str, GameRecord] = field(default_factory=dict)
    catalog: dict[str, CatalogEntry] = field(default_factory=dict)
    unavailable: dict[Path, str] = field(default_factory=dict)  # root -> why
    busy: set[str] = field(default_factory=set)
    #: Built summaries, rebuilt only when their record or catalog entry changed.
    _summaries: dict[str, tuple[GameRecord, CatalogEntry, GameSummary]] = field(
        default_factory=dict, repr=False
    )

    def served(self, game_id: str) -> GameRecord:
        """The record of a game a peer may read, or the refusal to send."""
        record = self.records.get(game_id)
        if record is None or game_id not in self.catalog:
            raise ServeRefused(ErrorCode.NOT_FOUND, f"game {game_id!r} is not served here")
        if not record.downloaded or game_id in self.busy:
            raise ServeRefused(ErrorCode.BUSY, f"game {game_id!r} is busy or not downloaded")
        if record.root in self.unavailable:
            raise ServeRefused(ErrorCode.NOT_FOUND, f"game {game_id!r} is not reachable now")
        return record

    def downloaded(self, game_id: str) -> GameRecord:
        """The record of a downloaded game, catalog and busy mark aside (local use)."""
        record = self.records.get(game_id)
        if record is None or not record.downloaded:
            raise ServeRefused(ErrorCode.NOT_FOUND, f"game {game_id!r} is not downloaded here")
        return record

    def advertised(self) -> dict[str, GameSummary]:
        games = {}
        for game_id, record in self.records.items():
            entry = self.catalog.get(game_id)
            if entry is not None and record.downloaded and game_id not in self.busy:
                games[game_id] = self._summary(record, entry)
        for game_id in self._summaries.keys() - games.keys():
            del self._summaries[game_id]
        return games

    def _summary(self, record: GameRecord, entry: CatalogEntry) -> GameSummary:
        cached = self._summaries.get(record.game_id)
        if cached is not None and cached[0] == record and cached[1] == entry:
            return cached[2]
        summary = GameSummary(
            id=record.game_id,
            name=entry.name,
            version=record.version or "",
            manifest_hash=record.manifest_hash,
            size=record.size,
            description=entry.description,
            genre=entry.genre,
            max_players=entry.max_players,
        )
        self._summaries[record.game_id] = (record, entry, summary)
        return summary

    def needs_hash(self) -> list[str]:
        """Games to hash in the background: advertised and servable, without a manifest yet."""
        return [
            game_id
            for game_id, record in sorted(self.records.items())
            if record.manifest_hash is None
            and record.downloaded
            and game_id in self.catalog
            and game_id not in self.busy
            and record.root not in self.unavailable
        ]

    def local_game(self, record: GameRecord, progress: HashProgress | None) -> LocalGame:
        entry = self.catalog.get(record.game_id)
        progress = progress or HashProgress()
        return LocalGame(
            id=record.game_id,
            name=entry.name if entry else record.game_id,
            version=record.version,
            downloaded=record.downloaded,
            installed=record.installed,
            local_only=record.installed and not record.downloaded,
            size=record.size,
            root=record.root,
            path=record.root / record.game_id,
            manifest_hash=record.manifest_hash,
            hashed_bytes=progress.done,
            hash_total=progress.total,
            in_catalog=entry is not None,
            busy=record.game_id in self.busy,
            root_available=record.root not in self.unavailable,
        )
