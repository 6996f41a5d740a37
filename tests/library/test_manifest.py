"""Manifests: chunking, canonical hash, reuse of cached chunk hashes, files changing under us."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest

from lanpeer.library.disk import walk_served_files
from lanpeer.library.index import GameRecord, LibraryIndex
from lanpeer.library.manifest import (
    CHUNK_SIZE,
    FileChangedError,
    build_manifest,
    hash_file,
    manifest_hash_of,
    verify_manifest,
)
from lanpeer.library.scanner import HashCancelled, HashProgress, hash_game, still_current

from .helpers import make_game


def test_chunks_are_blake3_of_each_chunk(tmp_path: Path) -> None:
    data = os.urandom(CHUNK_SIZE + 1000)
    game = make_game(tmp_path, "g", files={"big.eti": data, "empty": b""})
    stats = {f.path: f for f in walk_served_files(game)}
    seen: list[int] = []
    big = hash_file(game, stats["big.eti"], seen.append)
    assert big.chunk_hashes == (
        blake3.blake3(data[:CHUNK_SIZE]).digest(),
        blake3.blake3(data[CHUNK_SIZE:]).digest(),
    )
    assert seen == [CHUNK_SIZE, 1000]
    assert hash_file(game, stats["empty"], seen.append).chunk_hashes == ()


def test_manifest_hash_is_canonical(tmp_path: Path) -> None:
    game = make_game(tmp_path, "g", files={"b": b"2", "a/x": b"1"})
    hashed = [hash_file(game, f, lambda n: None) for f in walk_served_files(game)]
    one = build_manifest("g", "1.0", hashed)
    two = build_manifest("g", "1.0", list(reversed(hashed)))
    assert one == two
    assert [f.path for f in one.files] == ["a/x", "b", "version.ini"]
    assert verify_manifest(one)
    assert manifest_hash_of(one) == one.manifest_hash
    assert build_manifest("g", "1.1", hashed).manifest_hash != one.manifest_hash
    tampered = one.model_copy(update={"files": one.files[:1]})
    assert not verify_manifest(tampered)


def test_file_changed_while_hashing_is_detected(tmp_path: Path) -> None:
    game = make_game(tmp_path, "g", files={"f": b"x" * 100})
    (stat,) = [f for f in walk_served_files(game) if f.path == "f"]

    def grow(_n: int) -> None:
        with open(game / "f", "ab") as out:
            out.write(b"more")

    with pytest.raises(FileChangedError):
        hash_file(game, stat, grow)


def test_hashing_progress_is_reported_per_chunk(tmp_path: Path) -> None:
    game = make_game(tmp_path, "g", files={"a": b"a" * (CHUNK_SIZE + 5), "b": b"bb"})
    record = GameRecord("g", tmp_path, b"", True, False, "1.0", 0, None)
    seen: list[tuple[int, int]] = []

    class Recording(HashProgress):
        def add(self, n: int) -> None:
            super().add(n)
            seen.append((self.done, self.total))

    total = CHUNK_SIZE + 5 + 2 + (game / "version.ini").stat().st_size
    index = LibraryIndex(tmp_path / "state")
    try:
        result = hash_game(record, index, Recording())
    finally:
        index.close()
    assert seen[0] == (CHUNK_SIZE, total)
    assert seen[-1] == (total, total)
    assert result.files_hashed == 3


def test_cancelled_hashing_stops(tmp_path: Path) -> None:
    make_game(tmp_path, "g", files={"a": b"a" * (2 * CHUNK_SIZE)})
    record = GameRecord("g", tmp_path, b"", True, False, "1.0", 0, None)
    progress = HashProgress(cancelled=True)
    index = LibraryIndex(tmp_path / "state")
    with pytest.raises(HashCancelled):
        hash_game(record, index, progress)
    index.close()


def test_a_hash_stays_current_through_local_changes_only(tmp_path: Path) -> None:
    game = make_game(tmp_path, "g", files={"a": b"a" * 100, "sub/b": b"b"})
    record = GameRecord("g", tmp_path, b"", True, False, "1.0", 0, None)
    index = LibraryIndex(tmp_path / "state")
    try:
        result = hash_game(record, index, HashProgress())
    finally:
        index.close()
    (game / "local").mkdir()
    (game / "local" / "game.exe").write_bytes(b"installed")
    (game / ".lanpeer.json").write_text("{}")
    assert still_current(record, result)
    (game / "sub" / "c").write_bytes(b"new")
    assert not still_current(record, result)
    (game / "sub" / "c").unlink()
    (game / "a").write_bytes(b"A" * 101)  # same-size rewrites may keep a coarse mtime
    assert not still_current(record, result)
