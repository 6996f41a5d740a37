"""RAR 4 archives, built by the test-only writer in rar4.py: a game archive extracts
byte-identical (detected by content), hostile ones are refused with nothing changed outside
staging, and an entry holding more than its declared size is refused.

Not tested: a stored entry's CRC. libarchive (3.6 to at least 3.8) returns EOF at UNP_SIZE
before it compares FILE_CRC, so corrupt stored RAR 4 data extracts without an error."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from gamekit import content, make_game, tree_digest
from rar4 import write_rar4

from lanpeer.errors import BadArchiveError, EncryptedArchiveError, UnsafeArchiveError
from lanpeer.install import ExtractLimits, extract_archive, install_game

MiB = 1024 * 1024
# Absolute names that would land outside staging: never under /etc, so that a broken check
# fails the test without touching the system.
OUTSIDE = ("/tmp/lanpeer-rar-escape/x", "/tmp/lanpeer-rar-escape.txt")


def _rar(entries: list[tuple[str, bytes]], **overrides: dict[str, int]) -> Callable[[Path], None]:
    return lambda path: write_rar4(path, entries, **overrides)


HOSTILE: dict[str, Callable[[Path], None]] = {
    "dotdot": _rar([("ok.txt", b"ok"), ("../evil.txt", b"evil")]),
    "inner-dotdot": _rar([("a/../../evil.txt", b"evil")]),
    "absolute": _rar([("/tmp/lanpeer-rar-escape/x", b"x")]),
    "absolute-tmp": _rar([("/tmp/lanpeer-rar-escape.txt", b"x")]),
    "symlink": _rar([("link", b"/etc/passwd")], modes={"link": 0o120777}),
    "char-device": _rar([("null", b"")], modes={"null": 0o020644}),
    "fifo": _rar([("pipe", b"")], modes={"pipe": 0o010644}),
    "duplicate": _rar([("same.txt", b"first"), ("other", b""), ("same.txt", b"second")]),
    # libarchive takes a name repeated at once for a split-file continuation: a nameless entry
    "duplicate-adjacent": _rar([("same.txt", b"first"), ("same.txt", b"second")]),
    "case-collision": _rar([("Readme.txt", b"a"), ("README.TXT", b"b")]),
    "encrypted": _rar([("secret.txt", b"secret")], flags={"secret.txt": 0x04}),
}


@pytest.fixture
def game(tmp_path: Path) -> Path:
    return make_game(tmp_path / "root" / "quake", "1.0")


def test_rar_game_archive_extracts_byte_identical_detected_by_content(tmp_path: Path) -> None:
    files = {
        "a/b.txt": b"hello",
        "c.bin": content("c", 200_000),
        "maps/deep/e.map": content("e", 5000),
        "empty.txt": b"",
    }
    dirs = ["a/", "maps/", "maps/deep/"]
    write_rar4(tmp_path / "data.eti", [(d, b"") for d in dirs] + list(files.items()))
    out = tmp_path / "out"
    out.mkdir()
    stats = extract_archive(tmp_path / "data.eti", out)
    assert stats.format_name == "RAR"
    assert (stats.files, stats.directories) == (4, 3)
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_dir()} == {
        d.rstrip("/") for d in dirs
    }
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == (
        files
    )


def test_rar_archive_installs_beside_the_other_formats(game: Path) -> None:
    """A game mixing tar.gz, zip and RAR payloads installs all of them."""
    write_rar4(game / "data3.eti", [("music/track.ogg", content("ogg", 30_000))])
    install_game(game)
    local = game / "local"
    assert (local / "music" / "track.ogg").read_bytes() == content("ogg", 30_000)
    assert (local / "maps" / "a.map").is_file()
    assert (local / "bin" / "game.exe").is_file()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_rar_is_refused_and_nothing_changes(case: str, game: Path, tmp_path: Path) -> None:
    outside = {path: os.path.lexists(path) for path in OUTSIDE}
    HOSTILE[case](game / "data2.eti")
    before = tree_digest(tmp_path)
    with pytest.raises(UnsafeArchiveError) as refused:
        install_game(game)
    assert tree_digest(tmp_path) == before, "something outside staging changed"
    assert {path: os.path.lexists(path) for path in OUTSIDE} == outside
    assert str(refused.value)
    if case == "encrypted":
        assert isinstance(refused.value, EncryptedArchiveError)
    if case == "duplicate-adjacent":
        assert "has no name" in str(refused.value)


def test_rar_entry_holding_more_than_it_declares_is_refused(tmp_path: Path) -> None:
    """UNP_SIZE says 10 bytes, the stored data is 8 MiB. libarchive 3.6 hands out its whole
    first read block (up to ~1 MiB) before stopping at UNP_SIZE; the extractor refuses the
    entry at the first byte past what it declared, and the caller removes the staging."""
    write_rar4(tmp_path / "liar.eti", [("liar.bin", bytes(8 * MiB))], declared={"liar.bin": 10})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BadArchiveError, match="more data than the 10 bytes it declares"):
        extract_archive(tmp_path / "liar.eti", out, ExtractLimits(durable=False))


def test_game_with_a_lying_rar_installs_nothing(tmp_path: Path, game: Path) -> None:
    write_rar4(game / "data2.eti", [("liar.bin", bytes(2 * MiB))], declared={"liar.bin": 10})
    before = tree_digest(tmp_path)
    with pytest.raises(BadArchiveError):
        install_game(game)
    assert tree_digest(tmp_path) == before
