"""Manifests: chunking, canonical hash, reuse of cached chunk hashes, files changing under us."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest

from lanpeer.library.disk import walk_served_files
from lanpeer.library.manifest import (
    CHUNK_SIZE,
    FileChangedError,
    build_manifest,
    hash_file,
    manifest_hash_of,
    verify_manifest,
)

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
