"""The persistent library index: one SQLite database (WAL) in the state dir (SPEC §6).

Owns the schema and every SQL statement: per-game records (fingerprint, states, version, size,
manifest_hash), per-file chunk hashes keyed by (path, size, mtime_ns, inode) with the file's
CRC-32 once the HTTP share needed it, root facts and the persisted advertised library (rev,
snapshot, delta history), and the schema migrations (``PRAGMA user_version``). Safe to call
from any thread (one connection behind a lock). Never touches game files; callers run the heavy
calls off the loop.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lanpeer_proto.errors import ProtocolError

from lanpeer.errors import LanpeerError
from lanpeer.library.disk import FileStat
from lanpeer.library.manifest import FileHashes
from lanpeer.library.revisions import RevisionLog

log = logging.getLogger(__name__)

INDEX_FILE = "library.sqlite3"
_HASH = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS games (
    game_id TEXT PRIMARY KEY, root TEXT NOT NULL, fingerprint BLOB NOT NULL,
    downloaded INTEGER NOT NULL, installed INTEGER NOT NULL, version TEXT,
    size INTEGER NOT NULL, manifest_hash BLOB);
CREATE TABLE IF NOT EXISTS files (
    game_id TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL, chunk_size INTEGER NOT NULL, hashes BLOB NOT NULL, crc32 INTEGER,
    PRIMARY KEY (game_id, path));
CREATE TABLE IF NOT EXISTS roots (root TEXT PRIMARY KEY, was_mount INTEGER NOT NULL);
"""
_REV_KEY = "advertised"
_REV_NUMBER_KEY = "library_rev"
_HISTORY_KEY = "history"
_PUT_GAME = "INSERT OR REPLACE INTO games VALUES (?,?,?,?,?,?,?,?)"
_PUT_FILE = (
    "INSERT INTO files (game_id, path, size, mtime_ns, inode, chunk_size, hashes, crc32)"
    " VALUES (?,?,?,?,?,?,?,?)"
)
#: Schema version 1 added ``files.crc32`` (the HTTP share's ZIP entries, computed once).
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class GameRecord:
    """What the index remembers of one game dir."""

    game_id: str
    root: Path
    fingerprint: bytes
    downloaded: bool
    installed: bool
    version: str | None
    size: int
    manifest_hash: bytes | None


def _game_row(r: GameRecord) -> tuple[object, ...]:
    return (
        r.game_id, str(r.root), r.fingerprint, int(r.downloaded), int(r.installed),
        r.version, r.size, r.manifest_hash,
    )  # fmt: skip


class LibraryIndex:
    """The SQLite index. Every method takes the lock and commits before it returns."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        path = state_dir / INDEX_FILE
        self._db = sqlite3.connect(path, check_same_thread=False)
        try:
            with self._lock, self._db:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
                _migrate(self._db)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise LanpeerError(
                f"the library index {path} is unreadable ({exc}); move it away and restart:"
                " it is rebuilt from the game dirs (peers then fetch a full snapshot)"
            ) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def load_games(self) -> dict[str, GameRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT game_id, root, fingerprint, downloaded, installed, version, size,"
                " manifest_hash FROM games"
            ).fetchall()
        return {
            r[0]: GameRecord(r[0], Path(r[1]), r[2], bool(r[3]), bool(r[4]), r[5], r[6], r[7])
            for r in rows
        }

    def put_games(self, records: Iterable[GameRecord]) -> None:
        rows = [_game_row(r) for r in records]
        with self._lock, self._db:
            self._db.executemany(_PUT_GAME, rows)

    def delete_games(self, game_ids: Iterable[str]) -> None:
        ids = [(g,) for g in game_ids]
        with self._lock, self._db:
            self._db.executemany("DELETE FROM games WHERE game_id = ?", ids)
            self._db.executemany("DELETE FROM files WHERE game_id = ?", ids)

    def file_hashes(self, game_id: str) -> dict[str, FileHashes]:
        with self._lock:
            rows = self._db.execute(
                "SELECT path, size, mtime_ns, inode, chunk_size, hashes, crc32 FROM files"
                " WHERE game_id = ?",
                (game_id,),
            ).fetchall()
        return {
            path: FileHashes(
                FileStat(path, size, mtime_ns, inode),
                chunk_size,
                tuple(blob[i : i + _HASH] for i in range(0, len(blob), _HASH)),
                crc32,
            )
            for path, size, mtime_ns, inode, chunk_size, blob, crc32 in rows
        }

    def file_crc32s(self, game_id: str) -> dict[str, int | None]:
        """The cached CRC-32 of each file row of ``game_id`` (None: not computed yet)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT path, crc32 FROM files WHERE game_id = ?", (game_id,)
            ).fetchall()
        return dict(rows)

    def put_crc32(self, game_id: str, stat: FileStat, crc32: int) -> bool:
        """Cache ``crc32`` for the row of exactly this file version; False if the row moved on."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "UPDATE files SET crc32 = ? WHERE game_id = ? AND path = ? AND size = ?"
                " AND mtime_ns = ? AND inode = ?",
                (crc32, game_id, stat.path, stat.size, stat.mtime_ns, stat.inode),
            )
        return cursor.rowcount == 1

    def put_manifest(self, record: GameRecord, files: Iterable[FileHashes]) -> None:
        """Replace a game's file rows and record in one transaction."""
        rows = [
            (
                record.game_id, f.stat.path, f.stat.size, f.stat.mtime_ns, f.stat.inode,
                f.chunk_size, b"".join(f.chunk_hashes), f.crc32,
            )
            for f in files
        ]  # fmt: skip
        with self._lock, self._db:
            self._db.execute("DELETE FROM files WHERE game_id = ?", (record.game_id,))
            self._db.executemany(_PUT_FILE, rows)
            self._db.execute(_PUT_GAME, _game_row(record))

    def load_revisions(self, history: int) -> RevisionLog:
        """The persisted advertised library; if unreadable, at least its rev (never goes back)."""
        persisted = self.get_meta(_REV_KEY)
        rev = int.from_bytes(self.get_meta(_REV_NUMBER_KEY) or b"", "big")
        if persisted is None:
            return RevisionLog(rev, history=history)
        try:
            revisions = RevisionLog.from_bytes(persisted, history)
        except (ProtocolError, TypeError) as exc:
            log.warning("persisted library unreadable (%s); continuing from rev %d", exc, rev)
            return RevisionLog(rev, history=history)
        revisions.restore_history(self.get_meta(_HISTORY_KEY) or b"")
        return revisions

    def save_revisions(self, revisions: RevisionLog) -> None:
        """Rev, advertised snapshot and delta history, in one transaction."""
        self.set_meta(
            {
                _REV_KEY: revisions.to_bytes(),
                _REV_NUMBER_KEY: revisions.rev.to_bytes(8, "big"),
                _HISTORY_KEY: revisions.history_to_bytes(),
            }
        )

    def get_meta(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_meta(self, items: dict[str, bytes]) -> None:
        """Write several meta rows in one transaction."""
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", items.items())

    def root_was_mount(self, root: Path) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT was_mount FROM roots WHERE root = ?", (str(root),)
            ).fetchone()
        return bool(row and row[0])

    def set_root_mount(self, root: Path, is_mount: bool) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO roots VALUES (?, ?)", (str(root), int(is_mount))
            )


def _migrate(db: sqlite3.Connection) -> None:
    """Bring an index written by an older lanpeerd up to ``SCHEMA_VERSION`` (additive only)."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version < 1:
        columns = {row[1] for row in db.execute("PRAGMA table_info(files)")}
        if "crc32" not in columns:  # an index from before the HTTP share
            db.execute("ALTER TABLE files ADD COLUMN crc32 INTEGER")
    if version < SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
