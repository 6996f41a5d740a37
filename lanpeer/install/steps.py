"""The filesystem steps recovery and the transactions share: drop a directory, restore a
backup, finish a remove, finish a download commit, drop an empty game dir, sweep scratch files.

Owns the steps only (each goes through ``fsops``, so the crash-point tests see every one); the
recovery table decides which run when, the transactions when to call them. Imports only
``fsops`` and ``intent``: everything else in install/ builds on this module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from lanpeer.install import fsops
from lanpeer.install.intent import (
    MARKER,
    NEVER_TOUCHED,
    GamePaths,
    IntentRecord,
    exists,
    is_real_dir,
)

log = logging.getLogger(__name__)


def drop(path: Path) -> bool:
    """Delete a directory (in steps) or a file; False when there was nothing."""
    if not exists(path):
        return False
    if is_real_dir(path):
        fsops.rmtree(path)
    else:
        fsops.unlink(path)
    fsops.fsync_dir(path.parent)
    return True


def restore_backup(paths: GamePaths) -> None:
    if exists(paths.backup / MARKER):
        fsops.unlink(paths.backup / MARKER)
    fsops.rename(paths.backup, paths.local)
    fsops.fsync_dir(paths.game_dir)


def sweep_scratch(paths: GamePaths) -> None:
    for scratch in (paths.log_tmp, paths.version_tmp, paths.installed_tmp):
        if exists(scratch):
            fsops.unlink(scratch)


def finish_remove(paths: GamePaths) -> None:
    """Delete a not-installed game's downloaded files; version.ini goes first."""
    drop(paths.version)
    kept = NEVER_TOUCHED | {paths.log.name, "local"}
    for entry in sorted(os.scandir(paths.game_dir), key=lambda e: e.name):
        if entry.name not in kept and not entry.name.startswith(".local."):
            drop(Path(entry.path))


def drop_empty_game_dir(paths: GamePaths) -> bool:
    with os.scandir(paths.game_dir) as entries:
        if any(entries):
            return False
    fsops.rmdir(paths.game_dir)
    fsops.fsync_dir(paths.game_dir.parent)
    return True


def roll_forward_commit(paths: GamePaths, record: IntentRecord) -> None:
    """Finish a recorded download commit. Idempotent: run again after a crash at any step, it
    finishes the same commit (version.ini is written last)."""
    staged = paths.game_dir / record.part
    missing = [f for f in record.files if not exists(staged / f) and not exists(paths.game_dir / f)]
    if exists(paths.version):
        fsops.unlink(paths.version)
        fsops.fsync_dir(paths.game_dir)
    if missing:
        log.error(
            "%s: commit cannot finish, %d staged files are gone (first: %s); "
            "the game stays not downloaded",
            paths.game_dir,
            len(missing),
            missing[0],
        )
        return
    _move_files_into_place(paths.game_dir, staged, record.files)
    _delete_removed(paths, record.removed)
    fsops.replace_durably(paths.version, paths.version_tmp, record.version_ini)
    if exists(paths.part):
        fsops.rmtree(paths.part)
        fsops.fsync_dir(paths.game_dir)


def _move_files_into_place(game_dir: Path, staged: Path, files: Sequence[str]) -> None:
    touched: set[Path] = set()
    for name in files:
        source, target = staged / name, game_dir / name
        if exists(source):
            _ensure_parents(game_dir, name)
            fsops.rename(source, target)
            touched.add(target.parent)
    for directory in sorted(touched):
        fsops.fsync_dir(directory)


def _delete_removed(paths: GamePaths, removed: Sequence[str]) -> None:
    touched: set[Path] = set()
    for name in removed:
        target = paths.game_dir / name
        if exists(target) and not is_real_dir(target):
            fsops.unlink(target)
            touched.add(target.parent)
    for directory in sorted(touched):
        fsops.fsync_dir(directory)


def _ensure_parents(game_dir: Path, name: str) -> None:
    current = game_dir
    for part in name.split("/")[:-1]:
        current = current / part
        if not exists(current):
            fsops.mkdir(current)
        elif not is_real_dir(current):
            raise NotADirectoryError(f"{current} is in the way of a committed file")
