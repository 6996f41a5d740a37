"""install / update / uninstall / remove / commit_download on real game dirs (no crashes)."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import pytest
from gamekit import content, make_game, tree_digest, write_tar

from lanpeer.errors import (
    ConflictError,
    InstallCancelled,
    TransactionAborted,
    UnsafeArchiveError,
)
from lanpeer.install import (
    commit_download,
    fsops,
    install_game,
    recover_game_dir,
    recover_root,
    remove_game,
    uninstall_game,
    update_game,
)


def test_install_extracts_every_payload_into_local(tmp_path: Path) -> None:
    game = make_game(tmp_path / "root" / "quake", "1.0")
    install_game(game)
    local = tree_digest(game / "local")
    assert {"bin/game.exe", "README.txt", "maps/a.map", "maps/deep/b.map"} <= set(local)
    assert local["maps/a.map"] == tree_digest(game)["local/maps/a.map"]
    assert not (game / ".lanpeer.json").exists()
    # no scratch left; the record of what local/ holds is the version.ini it came from
    assert sorted(p.name for p in game.iterdir() if p.name.startswith(".")) == [
        ".lanpeer.installed"
    ]
    assert (game / ".lanpeer.installed").read_bytes() == (game / "version.ini").read_bytes()


def test_install_refuses_an_installed_game(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    install_game(game)
    with pytest.raises(ConflictError, match="already installed"):
        install_game(game)


def test_update_replaces_local_and_drops_the_backup(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0", seed="v1")
    install_game(game)
    (game / "local" / "savegame.dat").write_bytes(b"mine")
    make_game(game, "2.0", seed="v2")
    update_game(game)
    assert (game / "local" / "README.txt").read_bytes() == b"v2" * 10
    assert not (game / "local" / "savegame.dat").exists()
    assert not (game / ".local.backup").exists()


def test_failed_update_restores_the_previous_install(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    install_game(game)
    before = tree_digest(game)
    write_tar(game / "zz-evil.eti", {"../escape": b"x"})
    with pytest.raises(UnsafeArchiveError):
        update_game(game)
    after = tree_digest(game)
    after.pop("zz-evil.eti")
    assert after == before


def test_uninstall_reports_bytes_deleted_of_the_installed_size_file_by_file(
    tmp_path: Path,
) -> None:
    """Once: one report per top-level entry, so a game in one folder jumped 0 -> 100 %."""
    game = make_game(tmp_path / "quake", "1.0")
    install_game(game)
    (game / "local" / "maps" / "deep" / "more").mkdir()
    (game / "local" / "maps" / "deep" / "more" / "c.map").write_bytes(b"c" * 4000)
    (game / "local" / "maps" / "link").symlink_to(game)  # deleted, never followed
    files = [p for p in (game / "local").rglob("*") if p.is_file() and not p.is_symlink()]
    in_maps = sum(p.stat().st_size for p in files if "maps" in p.parts)
    total = sum(p.stat().st_size for p in files)
    reports: list[tuple[int, int]] = []
    uninstall_game(game, progress=lambda done, of: reports.append((done, of)))
    assert {of for _, of in reports} == {total}
    done = [d for d, _ in reports]
    assert done == sorted(done)
    assert (done[0], done[-1]) == (0, total)
    # maps/ goes last (name order): some report falls partway through it, not only after it
    assert any(total - in_maps < d < total for d in done)
    assert len(reports) >= len(files) + 1  # the start, then every file
    assert not (game / "local").exists()
    assert (game / "data2.eti").is_file()  # what the link pointed at is still there


def test_uninstall_deletes_local_only(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    install_game(game)
    uninstall_game(game)
    assert not (game / "local").exists()
    assert (game / "version.ini").is_file()
    assert not (game / ".local.backup").exists()


def test_remove_deletes_downloaded_files_but_never_external_markers(tmp_path: Path) -> None:
    root = tmp_path / "root"
    game = make_game(root / "quake", "1.0")
    (game / ".sync").mkdir()
    (game / ".softlan_game_installed").write_text("x")
    remove_game([root], game)
    assert sorted(p.name for p in game.iterdir()) == [".softlan_game_installed", ".sync"]
    plain = make_game(root / "doom", "1.0")
    remove_game([root], plain)
    assert not plain.exists()


def test_remove_refuses_installed_or_foreign_dirs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    game = make_game(root / "quake", "1.0")
    install_game(game)
    with pytest.raises(ConflictError, match="uninstall"):
        remove_game([root], game)
    other = make_game(tmp_path / "elsewhere" / "doom", "1.0")
    with pytest.raises(ConflictError, match="configured game root"):
        remove_game([root], other)


def test_markerless_staging_blocks_install_and_is_left_alone(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    (game / ".local.installing").mkdir()
    (game / ".local.installing" / "users-file").write_text("keep")
    with pytest.raises(ConflictError, match="not created by this operation"):
        install_game(game)
    assert recover_game_dir(game).steps == ()
    assert (game / ".local.installing" / "users-file").read_text() == "keep"


def _stage_download(game: Path, files: dict[str, bytes]) -> None:
    part = game / ".lanpeer.part"
    for name, data in files.items():
        (part / name).parent.mkdir(parents=True, exist_ok=True)
        (part / name).write_bytes(data)
    (part / "resume.state").write_bytes(b"chunks")


def test_commit_download_moves_files_then_writes_version_ini(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    new = {"data1.eti": content("new1", 900), "extra/new.pak": content("new2", 300)}
    _stage_download(game, new)
    commit_download(
        game, game / ".lanpeer.part", list(new), b"version=2.0\n", removed=["cover.jpg"]
    )
    assert (game / "version.ini").read_bytes() == b"version=2.0\n"
    assert (game / "extra" / "new.pak").read_bytes() == new["extra/new.pak"]
    assert not (game / "cover.jpg").exists()
    assert not (game / ".lanpeer.part").exists()
    assert not (game / ".lanpeer.json").exists()


def test_commit_refuses_bad_paths_and_keeps_the_old_version(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    (game / ".lanpeer.part").mkdir()
    before = tree_digest(game)
    with pytest.raises(ConflictError, match="not allowed"):
        commit_download(game, game / ".lanpeer.part", ["../evil"], b"version=2\n")
    with pytest.raises(ConflictError, match="not a staged regular file"):
        commit_download(game, game / ".lanpeer.part", ["missing.eti"], b"version=2\n")
    assert tree_digest(game) == before


def test_failed_commit_is_left_for_startup_recovery_and_rolls_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    _stage_download(game, {"data1.eti": b"new"})

    def fail_renames(operation: str, path: str) -> None:
        if operation == "rename" and path.endswith(".lanpeer.part/data1.eti"):
            raise OSError(5, "Input/output error")

    fsops.set_step_hook(fail_renames)
    try:
        with pytest.raises(TransactionAborted, match="aborted"):
            commit_download(game, game / ".lanpeer.part", ["data1.eti"], b"version=2\n")
    finally:
        fsops.set_step_hook(None)
    assert not (game / "version.ini").exists(), "never shown downloaded after an I/O error"
    assert recover_game_dir(game).recorded == "Committing"
    assert (game / "version.ini").read_bytes() == b"version=2\n"
    assert (game / "data1.eti").read_bytes() == b"new"


def test_fsync_error_on_staging_aborts_install_without_local(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    before = tree_digest(game)

    def fail_staging_fsync(operation: str, path: str) -> None:
        if operation == "fsync" and path.endswith(".local.installing"):
            raise OSError(5, "Input/output error")

    fsops.set_step_hook(fail_staging_fsync)
    try:
        with pytest.raises(TransactionAborted):
            install_game(game)
    finally:
        fsops.set_step_hook(None)
    assert tree_digest(game) == before


def test_recover_root_skips_files_and_healthy_games(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "root"
    make_game(root / "quake", "1.0")
    (root / "catalog.toml").write_text("")
    caplog.set_level(logging.INFO)
    results = recover_root(root)
    assert [r.game_dir.name for r in results] == ["quake"]
    assert not results[0].changed
    assert recover_root(tmp_path / "missing") == []
    shutil.rmtree(root)


def test_commit_accepts_the_download_engines_files_subdir(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    files_dir = game / ".lanpeer.part" / "files"
    (files_dir / "maps").mkdir(parents=True)
    (files_dir / "maps" / "new.map").write_bytes(b"map")
    (game / ".lanpeer.part" / "state.json").write_text("{}")
    commit_download(game, files_dir, ["maps/new.map"], b"version=3\n")
    assert (game / "maps" / "new.map").read_bytes() == b"map"
    assert not (game / ".lanpeer.part").exists()
    with pytest.raises(ConflictError, match="staged inside"):
        commit_download(game, tmp_path, ["x"], b"version=4\n")


def test_commit_ignores_a_users_markerless_local_dirs(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    (game / ".local.backup").mkdir()
    (game / ".local.backup" / "users-file").write_text("keep")
    _stage_download(game, {"data1.eti": b"new"})
    commit_download(game, game / ".lanpeer.part", ["data1.eti"], b"version=2\n")
    assert (game / ".local.backup" / "users-file").read_text() == "keep"
    assert (game / "version.ini").read_bytes() == b"version=2\n"


def _cancel_on_extract_step(cancel: threading.Event, at: int) -> fsops.StepHook:
    steps: list[str] = []

    def hook(operation: str, path: str) -> None:
        if operation == "extract":
            steps.append(path)
            if len(steps) == at:
                cancel.set()

    return hook


@pytest.mark.parametrize("at", [1, 3])
def test_cancel_during_extraction_rolls_install_back(tmp_path: Path, at: int) -> None:
    game = make_game(tmp_path / "quake", "1.0")
    before = tree_digest(game)
    cancel = threading.Event()
    fsops.set_step_hook(_cancel_on_extract_step(cancel, at))
    try:
        with pytest.raises(InstallCancelled):
            install_game(game, cancel=cancel)
    finally:
        fsops.set_step_hook(None)
    assert tree_digest(game) == before


def test_cancel_during_update_restores_the_previous_install(tmp_path: Path) -> None:
    game = make_game(tmp_path / "quake", "1.0", seed="v1")
    install_game(game)
    make_game(game, "2.0", seed="v2")
    before = tree_digest(game)
    cancel = threading.Event()
    fsops.set_step_hook(_cancel_on_extract_step(cancel, 2))
    try:
        with pytest.raises(InstallCancelled):
            update_game(game, cancel=cancel)
    finally:
        fsops.set_step_hook(None)
    assert tree_digest(game) == before
