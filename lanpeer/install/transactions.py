"""Install, update, uninstall and remove as crash-safe transactions (SPEC §8).

Each transaction records its intent before the first change and clears it after the last; a
failure hands the game to the recovery table at once, so a failed run and a crash converge the
same way. Sync code, run in a worker thread. Never retries a failed fsync or rename.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from lanpeer_proto.paths import is_game_id

from lanpeer.errors import ConflictError
from lanpeer.install import fsops
from lanpeer.install.archive import ExtractLimits, extract_archive
from lanpeer.install.intent import (
    MARKER,
    GamePaths,
    Intent,
    IntentRecord,
    exists,
    is_real_dir,
    is_regular_file,
    mark_owned,
)
from lanpeer.install.names import NameRegistry
from lanpeer.install.recovery import MAX_VERSION_INI
from lanpeer.install.steps import drop_empty_game_dir, finish_remove
from lanpeer.install.transaction import require_idle, transaction

log = logging.getLogger(__name__)

PAYLOAD_SUFFIX = ".eti"


#: ``progress(done, total)``: archive bytes extracted so far of all the game's archives.
Progress = Callable[[int, int], None]


def install_game(
    game_dir: Path,
    limits: ExtractLimits | None = None,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> None:
    """Extract every root ``.eti`` archive (name order) into ``local/``. Setting ``cancel``
    during extraction rolls back (InstallCancelled); after it, the install completes."""
    paths = GamePaths(game_dir)
    archives = _require_ready(paths, installed=False)
    version_ini = _version_ini(paths)
    with transaction(paths, IntentRecord(Intent.INSTALLING)):
        _extract_to_staging(paths, archives, limits, cancel, progress)
        _promote_staging(paths)
        _record_installed(paths, version_ini)


def update_game(
    game_dir: Path,
    limits: ExtractLimits | None = None,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> None:
    """Replace ``local/`` with a fresh extraction; a failure or a cancel during extraction
    restores the previous one."""
    paths = GamePaths(game_dir)
    archives = _require_ready(paths, installed=True)
    version_ini = _version_ini(paths)
    with transaction(paths, IntentRecord(Intent.UPDATING)):
        _move_to_backup(paths)
        _extract_to_staging(paths, archives, limits, cancel, progress)
        _promote_staging(paths)
        _record_installed(paths, version_ini)
        fsops.rmtree(paths.backup)
        fsops.fsync_dir(paths.game_dir)


def uninstall_game(game_dir: Path, *, progress: Progress | None = None) -> None:
    """Delete ``local/`` (moved to ``.local.backup/`` first, so a crash never leaves half);
    ``progress(done, total)`` in bytes deleted of the installed size, after each file."""
    paths = GamePaths(game_dir)
    require_idle(paths)
    if not is_real_dir(paths.local):
        raise ConflictError(f"{game_dir.name} is not installed; nothing to uninstall")
    with transaction(paths, IntentRecord(Intent.UNINSTALLING)):
        _move_to_backup(paths)
        if exists(paths.installed):
            fsops.unlink(paths.installed)
        fsops.rmtree(paths.backup, _deletion_progress(paths.backup, progress))
        fsops.fsync_dir(paths.game_dir)


def remove_game(roots: Sequence[Path], game_dir: Path) -> None:
    """Delete the downloaded files of a game that is not installed (SPEC §8 remove)."""
    paths = GamePaths(game_dir)
    _require_removable(roots, paths)
    with transaction(paths, IntentRecord(Intent.REMOVING)):
        finish_remove(paths)
    try:
        drop_empty_game_dir(paths)
    except OSError as exc:  # the game is already removed; an empty dir is not a game
        log.warning("%s: removed, but the empty dir stays: %s", game_dir, exc)


def _require_ready(paths: GamePaths, *, installed: bool) -> list[Path]:
    require_idle(paths)
    name = paths.game_dir.name
    if not is_regular_file(paths.version):
        raise ConflictError(f"{name} is not downloaded (no version.ini); download it first")
    if is_real_dir(paths.local) != installed:
        state = "not installed; install it" if installed else "already installed; update it"
        raise ConflictError(f"{name} is {state} instead")
    archives = payload_archives(paths.game_dir)
    if not archives:
        raise ConflictError(f"{name} has no {PAYLOAD_SUFFIX} archives to install")
    return archives


def payload_archives(game_dir: Path) -> list[Path]:
    """Root ``*.eti`` regular files, in name order (format is detected by content later)."""
    return sorted(
        Path(entry.path)
        for entry in os.scandir(game_dir)
        if entry.name.lower().endswith(PAYLOAD_SUFFIX) and entry.is_file(follow_symlinks=False)
    )


def _require_removable(roots: Sequence[Path], paths: GamePaths) -> None:
    game_dir = paths.game_dir
    real_roots = {os.path.realpath(root) for root in roots}
    if not is_game_id(game_dir.name) or game_dir.is_symlink() or not is_real_dir(game_dir):
        raise ConflictError(f"{game_dir} is not a game directory")
    if os.path.realpath(game_dir.parent) not in real_roots:
        raise ConflictError(f"{game_dir} is not directly inside a configured game root")
    if not is_regular_file(paths.version):
        raise ConflictError(f"{game_dir.name} is not downloaded (no version.ini)")
    if exists(paths.local):
        raise ConflictError(f"{game_dir.name} is installed; uninstall it first")
    require_idle(paths, touches_local=False)  # .local.* dirs are kept, never deleted


def _move_to_backup(paths: GamePaths) -> None:
    fsops.rename(paths.local, paths.backup)
    fsops.fsync_dir(paths.game_dir)
    mark_owned(paths.backup)


def _extract_to_staging(
    paths: GamePaths,
    archives: list[Path],
    limits: ExtractLimits | None,
    cancel: threading.Event | None,
    progress: Progress | None = None,
) -> None:
    fsops.mkdir(paths.staging)
    mark_owned(paths.staging)
    names = NameRegistry()  # one namespace: archives must not collide with each other
    sizes = [archive.stat().st_size for archive in archives]
    total, before = sum(sizes), 0
    for archive, archive_size in zip(archives, sizes, strict=True):
        report = None if progress is None else _offset_by(progress, before, total)
        extract_archive(archive, paths.staging, limits, names=names, cancel=cancel,
                        progress=report)  # fmt: skip
        before += archive_size
        if progress is not None:
            progress(before, total)
    fsops.fsync_tree(paths.staging)  # entries durable before the rename into place


def _offset_by(progress: Progress, before: int, total: int) -> Callable[[int], None]:
    return lambda done: progress(min(before + done, total), total)


def _deletion_progress(top: Path, progress: Progress | None) -> Callable[[str, int], None] | None:
    """The installed size (walked once, before; our marker left out), then the bytes deleted
    of it as each file goes."""
    if progress is None:
        return None
    total = sum(_tree_bytes(Path(e.path)) for e in os.scandir(top) if e.name != MARKER)
    done = [0]
    progress(0, total)

    def gone(child: str, size: int) -> None:
        if child != MARKER:
            done[0] = min(done[0] + size, total)
            progress(done[0], total)

    return gone


def _tree_bytes(path: Path) -> int:
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    return sum((Path(d) / f).lstat().st_size for d, _dirs, files in os.walk(path) for f in files)


def _version_ini(paths: GamePaths) -> bytes:
    """What is about to be extracted, read once before: a download may replace it meanwhile."""
    with open(paths.version, "rb") as version:
        return version.read(MAX_VERSION_INI)


def _record_installed(paths: GamePaths, version_ini: bytes) -> None:
    """Which version ``local/`` now holds: ``games`` shows it apart from the downloaded one."""
    fsops.replace_durably(paths.installed, paths.installed_tmp, version_ini)


def _promote_staging(paths: GamePaths) -> None:
    fsops.unlink(paths.staging / MARKER)
    fsops.rename(paths.staging, paths.local)
    fsops.fsync_dir(paths.game_dir)
