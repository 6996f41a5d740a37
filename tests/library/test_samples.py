"""The sample generator: deterministic bytes, real archives, version.ini last, a catalog."""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from pathlib import Path

from lanpeer.library.catalog import load_catalog
from lanpeer.library.disk import inspect_game, read_version
from lanpeer.library.samples import (
    generate_game,
    generate_library,
    payload_bytes,
    write_catalog,
)


def _digest(game: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(game.iterdir())}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    one = generate_game(tmp_path / "a", "alpha", 300_000, seed=7, version="2.1")
    two = generate_game(tmp_path / "b", "alpha", 300_000, seed=7, version="2.1")
    other = generate_game(tmp_path / "c", "alpha", 300_000, seed=8, version="2.1")
    assert _digest(one) == _digest(two) != _digest(other)
    names = ["cover.png", "data00.eti", "data01.eti", "data02.eti", "version.ini"]
    assert sorted(_digest(one)) == names


def test_archives_are_real_and_hold_the_payload(tmp_path: Path) -> None:
    game = generate_game(tmp_path, "beta", 200_001, seed=1, archives=2, cover=False)
    with zipfile.ZipFile(game / "data00.eti") as archive:
        assert archive.testzip() is None
        first = archive.read("beta/data00.bin")
    with tarfile.open(game / "data01.eti") as archive:
        member = archive.extractfile("beta/data01.bin")
        assert member is not None
        second = member.read()
    assert first == payload_bytes("1:beta:1.0:0", 100_000)
    assert second == payload_bytes("1:beta:1.0:1", 100_001)
    assert (game / "cover.png").exists() is False
    assert not (game / ".version.ini.tmp").exists()
    assert read_version(game) == "1.0"
    assert inspect_game(game).downloaded


def test_generate_library_writes_catalog(tmp_path: Path) -> None:
    ids = generate_library(tmp_path, 3, 1000, seed=1)
    assert ids == ["game-0000", "game-0001", "game-0002"]
    catalog = load_catalog(tmp_path / "catalog.toml")
    assert sorted(catalog) == ids
    assert catalog["game-0001"].name == "Game 0001"


def test_write_catalog_accepts_entries_mappings_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    write_catalog(path, ["a-b", {"id": "c", "name": "C", "max_players": 4}])
    catalog = load_catalog(path)
    assert catalog["a-b"].name == "A B"
    assert catalog["c"].max_players == 4
