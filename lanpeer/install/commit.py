"""The download commit: move verified files from ``.lanpeer.part/`` into the game, then write
``version.ini`` last, as a roll-forward transaction recorded as ``Committing``.

Until the intent is recorded the previous version is untouched; after it, the commit is only
ever completed, never undone. Never writes version.ini before every file is in place, and never
finishes a commit in-process after an I/O error (that is left to startup recovery).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from lanpeer_proto.paths import path_problem

from lanpeer.errors import ConflictError, TransactionAborted
from lanpeer.install import fsops
from lanpeer.install.intent import (
    GamePaths,
    Intent,
    IntentRecord,
    is_real_dir,
    is_regular_file,
    part_dir_problem,
)
from lanpeer.install.steps import roll_forward_commit
from lanpeer.install.transaction import require_idle, transaction

log = logging.getLogger(__name__)


def commit_download(
    game_dir: Path,
    part_dir: Path,
    files: Sequence[str],
    version_ini: bytes,
    *,
    removed: Sequence[str] = (),
) -> None:
    """Move ``files`` (relative paths, staged under ``part_dir``, which is ``.lanpeer.part/``
    or a directory inside it) into ``game_dir``, delete ``removed`` (files of the old version
    absent from the new one), write version.ini, then delete ``.lanpeer.part/``."""
    paths = GamePaths(game_dir)
    part = _check_request(paths, part_dir, files, removed)
    require_idle(paths, touches_local=False)
    _make_staged_files_durable(part_dir, files)
    record = IntentRecord(Intent.COMMITTING, tuple(files), tuple(removed), version_ini, part)
    with transaction(paths, record):
        roll_forward_commit(paths, record)
    log.info("%s: committed %d files, removed %d", game_dir, len(files), len(removed))


def _make_staged_files_durable(part_dir: Path, files: Sequence[str]) -> None:
    try:
        for name in files:
            fsops.fsync_file(part_dir / name)
    except OSError as exc:
        raise TransactionAborted(
            f"commit aborted before it started: {exc}; the previous version is untouched"
        ) from exc


def _check_request(
    paths: GamePaths, part_dir: Path, files: Sequence[str], removed: Sequence[str]
) -> str:
    """Validate a commit request; returns ``part_dir`` relative to the game dir."""
    try:
        part = part_dir.relative_to(paths.game_dir).as_posix()
    except ValueError:
        part = str(part_dir)
    problem = part_dir_problem(part)
    if problem or not is_real_dir(part_dir):
        raise ConflictError(f"downloads are staged inside {paths.part}, not in {part_dir}")
    for name in [*files, *removed]:
        problem = path_problem(name)
        if problem:
            raise ConflictError(f"cannot commit {name!r}: {problem}")
    for name in files:
        if not is_regular_file(part_dir / name):
            raise ConflictError(f"cannot commit {name!r}: not a staged regular file")
    return part
