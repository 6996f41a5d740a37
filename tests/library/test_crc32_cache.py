"""The CRC-32 cache in the library index: schema migration, per-version rows, kept on rehash."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from lanpeer.library.disk import FileStat
from lanpeer.library.index import INDEX_FILE, SCHEMA_VERSION, GameRecord, LibraryIndex
from lanpeer.library.manifest import FileHashes

_OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE games (
    game_id TEXT PRIMARY KEY, root TEXT NOT NULL, fingerprint BLOB NOT NULL,
    downloaded INTEGER NOT NULL, installed INTEGER NOT NULL, version TEXT,
    size INTEGER NOT NULL, manifest_hash BLOB);
CREATE TABLE files (
    game_id TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL, chunk_size INTEGER NOT NULL, hashes BLOB NOT NULL,
    PRIMARY KEY (game_id, path));
INSERT INTO files VALUES ('g', 'a.bin', 5, 7, 9, 4194304, x'00');
"""

STAT = FileStat("a.bin", 5, 7, 9)
RECORD = GameRecord("g", Path("/games"), b"f", True, False, "1", 5, b"m" * 32)


def test_an_index_from_before_the_share_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / INDEX_FILE) as old:
        old.executescript(_OLD_SCHEMA)
    old.close()
    index = LibraryIndex(tmp_path)
    try:
        assert index.file_crc32s("g") == {"a.bin": None}
        assert index.put_crc32("g", STAT, 0xDEADBEEF)
        assert index.file_crc32s("g") == {"a.bin": 0xDEADBEEF}
        assert index.file_hashes("g")["a.bin"].crc32 == 0xDEADBEEF
    finally:
        index.close()
    with sqlite3.connect(tmp_path / INDEX_FILE) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    db.close()
    LibraryIndex(tmp_path).close()  # opening a migrated index again is a no-op


def test_a_crc_for_another_version_of_the_file_is_not_stored(tmp_path: Path) -> None:
    index = LibraryIndex(tmp_path)
    try:
        index.put_manifest(RECORD, [FileHashes(STAT, 4 << 20, (bytes(32),))])
        assert not index.put_crc32("g", replace(STAT, mtime_ns=8), 1)  # the file moved on
        assert index.file_crc32s("g") == {"a.bin": None}
    finally:
        index.close()


def test_rewriting_the_manifest_keeps_a_reused_files_crc(tmp_path: Path) -> None:
    index = LibraryIndex(tmp_path)
    try:
        index.put_manifest(RECORD, [FileHashes(STAT, 4 << 20, (bytes(32),))])
        index.put_crc32("g", STAT, 42)
        reused = index.file_hashes("g")["a.bin"]  # what the scanner reuses for an unchanged file
        index.put_manifest(RECORD, [reused])
        assert index.file_crc32s("g") == {"a.bin": 42}
    finally:
        index.close()
