"""doctor tells the truth about game roots (issue 13), through a real daemon and peer-cli."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon.harness import Lanpeerd
from tests.daemon.readonly import ReadOnlyRootLanpeerd, needs_mount

pytestmark = pytest.mark.process


@needs_mount
def test_doctor_fails_a_read_only_game_root(daemons: list[Lanpeerd], tmp_path: Path) -> None:
    daemon = ReadOnlyRootLanpeerd(tmp_path / "ro").start()
    daemons.append(daemon)
    doctor = daemon.cli("doctor")
    assert doctor.rc == 1  # a failed check
    checks = {check["name"]: check for check in doctor.doc}
    root = checks[f"root {daemon.games}"]
    assert root["status"] == "fail"
    assert "read-only" in root["summary"]
    # outside the daemon's mount namespace the root stays writable: nothing leaked
    (daemon.games / "probe").write_text("writable here")


def test_skipped_game_dirs_and_catalog_entries_are_explained(
    daemons: list[Lanpeerd], tmp_path: Path
) -> None:
    daemon = Lanpeerd(tmp_path / "d")
    games = daemon.games
    (games / "Bad Game").mkdir(parents=True)
    for game_id in ("listed", "unlisted"):
        (games / game_id).mkdir()
        (games / game_id / "version.ini").write_text("version=1.0\n")
    (games / "catalog.toml").write_text(
        '[[game]]\nid = "listed"\nname = "Listed"\n\n'
        '[[game]]\nid = "nameless"\ntitle = "No Name"\n\n'
        '[[game]]\nid = "ghost"\nname = "Ghost"\n\n'
        '[[games]]\nid = "typo"\nname = "Typo"\n'
    )
    daemons.append(daemon.start())
    listed = {g["id"] for g in daemon.cli("games").doc}
    assert "listed" in listed
    check = {c["name"]: c for c in daemon.cli("doctor").doc}["catalog"]
    assert check["status"] == "warn"
    expected = [
        "'Bad Game' is not a game id (ids are lowercase letters, digits, - and _: rename it to "
        "'bad-game')",
        "game 'unlisted' is not in the catalog",
        "'nameless' has no name (unknown keys: title)",
        "catalog entry 'ghost' has no game dir",
        "unknown table 'games' (did you mean [[game]]?)",
    ]
    assert [text for text in expected if text not in check["summary"]] == []
    log = daemon.log_text()
    assert [text for text in expected if text not in log] == []  # said once at start, too
