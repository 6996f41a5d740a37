"""Garbage, truncated or strange ``.lanpeer.json``: conservative recovery, logged, never raises."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import pytest
from gamekit import make_game, tree_digest

from lanpeer.errors import ConflictError
from lanpeer.install import install_game, recover_game_dir, recover_root
from lanpeer.install.intent import MARKER, GamePaths, Intent, IntentRecord, read_intent
from lanpeer.install.recovery import NO_INTENT, plan


def _mid_update(tmp_path: Path) -> Path:
    """A game killed mid-update: local/ moved to a marked backup, marked staging half full."""
    game = make_game(tmp_path / "root" / "quake", "1.0")
    install_game(game)
    (game / "local").rename(game / ".local.backup")
    (game / ".local.backup" / MARKER).write_text("")
    (game / ".local.installing").mkdir()
    (game / ".local.installing" / MARKER).write_text("")
    (game / ".local.installing" / "half.bin").write_bytes(b"half")
    return game


GARBAGE = {
    "truncated": IntentRecord(Intent.UPDATING).to_json()[:17],
    "binary": bytes(range(256)),
    "empty": b"",
    "not-an-object": b"[1, 2, 3]",
    "unknown-intent": json.dumps({"format": 1, "intent": "Exploding"}).encode(),
    "future-format": IntentRecord(Intent.UPDATING)
    .to_json()
    .replace(b'"format": 1', b'"format": 9'),
    "hostile-file-list": json.dumps(
        {
            "format": 1,
            "intent": "Committing",
            "files": ["../../etc/passwd"],
            "removed": [],
            "version_ini": "",
        }
    ).encode(),
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_unreadable_log_recovers_marked_dirs_only_and_logs(
    case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    game = _mid_update(tmp_path)
    (game / ".lanpeer.json").write_bytes(GARBAGE[case])
    caplog.set_level(logging.WARNING)
    result = recover_game_dir(game)
    assert result.recorded == "unreadable"
    assert result.error is None
    assert "recovering conservatively" in caplog.text
    assert (game / "local" / "README.txt").is_file(), "the previous install is restored"
    assert not (game / "local" / MARKER).exists()
    dotfiles = {p.name for p in game.iterdir() if p.name.startswith(".")}
    assert dotfiles - {".lanpeer.installed"} == set()  # the install's record stays


def test_unreadable_log_leaves_markerless_local_dirs_untouched(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    for name in (".local.installing", ".local.backup"):
        (game / name).mkdir()
        (game / name / "users-file").write_text(name)
    (game / ".lanpeer.json").write_bytes(b"{garbage")
    before = tree_digest(game)
    result = recover_game_dir(game)
    before.pop(".lanpeer.json")
    assert tree_digest(game) == before
    assert result.steps != ()


def test_log_that_is_a_directory_or_symlink_is_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "root"
    odd = make_game(root / "odd", "1.0")
    (odd / ".lanpeer.json").mkdir()
    linked = make_game(root / "linked", "1.0")
    (linked / ".lanpeer.json").symlink_to("/etc/hostname")
    results = {r.game_dir.name: r for r in recover_root(root)}
    assert results["odd"].recorded == results["linked"].recorded == "unreadable"
    assert (odd / ".lanpeer.json").is_dir(), "a directory there is left for a person"
    assert not (linked / ".lanpeer.json").is_symlink()


def test_markerless_local_dirs_without_intent_are_untouched(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    (game / ".local.backup").mkdir()
    (game / ".local.backup" / "users-file").write_text("keep")
    before = tree_digest(game)
    assert recover_game_dir(game).steps == ()
    assert tree_digest(game) == before


def test_part_dir_without_commit_intent_is_kept_for_resume(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    (game / ".lanpeer.part").mkdir()
    (game / ".lanpeer.part" / "resume.state").write_bytes(b"chunks")
    (game / ".version.ini.tmp").write_bytes(b"version=2")
    recover_game_dir(game)
    assert (game / ".lanpeer.part" / "resume.state").read_bytes() == b"chunks"
    assert not (game / ".version.ini.tmp").exists()


def test_record_round_trips(tmp_path: Path) -> None:
    record = IntentRecord(Intent.COMMITTING, ("a/b.eti",), ("old.eti",), b"version=2\n\x00")
    game = tmp_path / "quake"
    game.mkdir()
    (game / ".lanpeer.json").write_bytes(record.to_json())
    assert read_intent(GamePaths(game)) == record


def test_recovery_table_covers_every_combination() -> None:
    recorded = [NO_INTENT, *Intent]
    for intent, local, backup in itertools.product(recorded, (False, True), (False, True)):
        assert plan(intent, local, backup), (intent, local, backup)


def test_operations_refuse_a_game_with_an_unreadable_log(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    (game / ".lanpeer.json").write_bytes(b"\x00garbage")
    with pytest.raises(ConflictError, match="unreadable intent log"):
        install_game(game)
    assert not (game / "local").exists()
