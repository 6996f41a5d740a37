"""On-disk rules of SPEC §3 on real directories: states, version, served files, symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lanpeer.library.disk import (
    inspect_game,
    list_game_ids,
    open_relative,
    parse_version,
    read_version,
    walk_served_files,
)

from .helpers import make_game


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("version=1.2.3\n", "1.2.3"),
        ("[Game]\nName = X\nVersion = 2.0 \n", "2.0"),
        ("[a]\nname=x\n[b]\nVERSION=3b\nversion=4\n", "3b"),
        ("\n\n   1.5 final\nother\n", "1.5 final"),
        ("\ufeffversion=7\n", "7"),
        ('version = "8.1"\n', "8.1"),
        ("[game]\n; a comment\nbuild 42\n", "build 42"),
        ("versions=9\nv1\n", "versions=9"),
        ("", ""),
        ("\r\n\r\nversion=10\r\n", "10"),
    ],
)
def test_version_variants(text: str, version: str) -> None:
    assert parse_version(text) == version


def test_version_is_bounded(tmp_path: Path) -> None:
    game = make_game(tmp_path, "long", downloaded=False)
    (game / "version.ini").write_text("version=" + "9" * 10_000)
    assert read_version(game) == "9" * 256


@pytest.mark.parametrize(
    ("downloaded", "installed"), [(True, True), (True, False), (False, True), (False, False)]
)
def test_states(tmp_path: Path, downloaded: bool, installed: bool) -> None:
    game = make_game(tmp_path, "g", downloaded=downloaded, installed=installed)
    facts = inspect_game(game)
    assert (facts.downloaded, facts.installed) == (downloaded, installed)


def test_sentinels_must_be_real(tmp_path: Path) -> None:
    game = make_game(tmp_path, "g", downloaded=False)
    (game / "version.ini").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (game / "local").symlink_to(tmp_path / "elsewhere")
    facts = inspect_game(game)
    assert not facts.downloaded
    assert not facts.installed
    (game / "version.ini").rmdir()
    (tmp_path / "v.ini").write_text("version=1\n")
    (game / "version.ini").symlink_to(tmp_path / "v.ini")
    assert not inspect_game(game).downloaded
    assert read_version(game) is None


def test_fingerprint_moves_with_root_level_changes_only(tmp_path: Path) -> None:
    game = make_game(tmp_path, "g", installed=True, files={"a.eti": b"1", "sub/b": b"2"})
    before = inspect_game(game).fingerprint
    (game / "local" / "save.dat").write_bytes(b"user data")
    (game / ".lanpeer.part").mkdir()
    assert inspect_game(game).fingerprint == before
    (game / "a.eti").write_bytes(b"12")
    assert inspect_game(game).fingerprint != before


def test_served_files_exclude_reserved_symlinks_and_specials(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"no")
    game = make_game(
        tmp_path, "g", installed=True, files={"a.eti": b"1", "art/cover.png": b"22", "x/y/z": b"3"}
    )
    for reserved in (".lanpeer.part", ".local.backup", ".sync"):
        (game / reserved).mkdir()
        (game / reserved / "f").write_bytes(b"r")
    (game / ".lanpeer.json").write_text("{}")
    (game / ".softlan_game_installed").write_text("")
    (game / "link-file").symlink_to(outside / "secret")
    (game / "link-dir").symlink_to(outside)
    (game / "art" / "inner-link").symlink_to(outside / "secret")
    os.mkfifo(game / "pipe")
    (game / "bad\\name").write_bytes(b"b")
    (game / "x" / "local").mkdir()  # only the top-level local/ is reserved
    (game / "x" / "local" / "ok").write_bytes(b"4")
    paths = [f.path for f in walk_served_files(game)]
    assert paths == ["a.eti", "art/cover.png", "version.ini", "x/local/ok", "x/y/z"]


def test_served_file_stats(tmp_path: Path) -> None:
    game = make_game(tmp_path, "g", files={"a.eti": b"12345"})
    (stat,) = [f for f in walk_served_files(game) if f.path == "a.eti"]
    st = os.stat(game / "a.eti")
    assert (stat.size, stat.mtime_ns, stat.inode) == (5, st.st_mtime_ns, st.st_ino)


def test_open_relative_refuses_symlinks_anywhere(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "d").mkdir(parents=True)
    (outside / "d" / "f").write_bytes(b"secret")
    game = make_game(tmp_path, "g", files={"real/f": b"ok"})
    (game / "d").symlink_to(outside / "d")
    (game / "real" / "g").symlink_to(outside / "d" / "f")
    fd = open_relative(game, "real/f")
    try:
        assert os.read(fd, 10) == b"ok"
    finally:
        os.close(fd)
    for path in ("d/f", "real/g", "missing", "real"):
        with pytest.raises(FileNotFoundError):
            open_relative(game, path)


def test_open_relative_refuses_a_symlinked_game_dir(tmp_path: Path) -> None:
    real = make_game(tmp_path, "real", files={"f": b"x"})
    (tmp_path / "alias").symlink_to(real)
    with pytest.raises(OSError):
        open_relative(tmp_path / "alias", "f")


def test_list_game_ids_only_real_dirs_with_valid_ids(tmp_path: Path) -> None:
    for name in ("ok-1", "a_b", "0x"):
        (tmp_path / name).mkdir()
    for name in ("Upper", ".hidden", "-dash", "with space"):
        (tmp_path / name).mkdir()
    (tmp_path / "file").write_bytes(b"")
    (tmp_path / "linked").symlink_to(tmp_path / "ok-1")
    assert list_game_ids(tmp_path) == ["0x", "a_b", "ok-1"]
    with pytest.raises(OSError):
        list_game_ids(tmp_path / "missing")
