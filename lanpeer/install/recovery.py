"""Startup recovery: (recorded intent x what is on disk) -> steps, as one table.

Owns the table (the steps it runs live in ``steps``); ``transaction`` runs it on failure, so
a failed run and a crash converge the same way. Never raises out of ``recover_game_dir``: a
step that fails is logged and the intent stays recorded for the next start. Never touches a
``.local.*`` directory that has no ownership marker unless the recorded intent says lanpeer
made it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from lanpeer.install import fsops, steps
from lanpeer.install.intent import (
    CorruptIntentLog,
    GamePaths,
    Intent,
    IntentRecord,
    clear_intent,
    exists,
    is_owned,
    is_real_dir,
    read_intent,
)

log = logging.getLogger(__name__)

MAX_VERSION_INI = 64 * 1024  # = transactions.MAX_VERSION_INI: what an install records


class Step(StrEnum):
    DROP_STAGING = "delete .local.installing"
    DROP_OWNED_STAGING = "delete .local.installing if it has our marker"
    RESTORE_BACKUP = "rename .local.backup back to local"
    DROP_BACKUP = "delete .local.backup"
    SETTLE_OWNED_BACKUP = "marked .local.backup: restore it if local/ is gone, else delete it"
    ROLL_FORWARD_COMMIT = "finish the download commit"
    FINISH_REMOVE = "finish deleting the downloaded files"
    RECORD_INSTALLED = "local/ is a dir: record version.ini as what it holds"
    DROP_INSTALLED = "local/ is gone: drop the record of what it held"
    CLEAR_INTENT = "clear the intent log"
    DROP_EMPTY_GAME_DIR = "delete the game dir if nothing is left"


NO_INTENT: Final = "none"
ANY: Final = None
S = Step

#: (recorded intent, local/ is a dir, .local.backup/ exists) -> steps. First match wins.
#: NO_INTENT also covers an unreadable log (after it is logged). Scratch files
#: (.lanpeer.json.tmp, .version.ini.tmp) are swept after every row.
RECOVERY_TABLE: tuple[tuple[str, bool | None, bool | None, tuple[Step, ...]], ...] = (
    # crashed before the new local/ was in place: roll back to the previous install
    (Intent.UPDATING, False, True, (S.DROP_STAGING, S.RESTORE_BACKUP, S.CLEAR_INTENT)),
    # the new local/ is in place: roll forward (its record may still name the old version)
    (
        Intent.UPDATING,
        True,
        True,
        (S.DROP_STAGING, S.RECORD_INSTALLED, S.DROP_BACKUP, S.CLEAR_INTENT),
    ),
    # not started, or finished: local/ is one complete install
    (Intent.UPDATING, ANY, False, (S.DROP_STAGING, S.CLEAR_INTENT)),
    # local/ was moved aside: the point of no return, roll forward
    (
        Intent.UNINSTALLING,
        ANY,
        True,
        (S.DROP_STAGING, S.DROP_INSTALLED, S.DROP_BACKUP, S.CLEAR_INTENT),
    ),
    (Intent.UNINSTALLING, ANY, False, (S.DROP_STAGING, S.DROP_INSTALLED, S.CLEAR_INTENT)),
    # staging is never a finished install: local/ exists only after the final rename
    (
        Intent.INSTALLING,
        ANY,
        ANY,
        (S.DROP_STAGING, S.SETTLE_OWNED_BACKUP, S.RECORD_INSTALLED, S.CLEAR_INTENT),
    ),
    # the record holds the file list and version.ini: always roll forward
    (
        Intent.COMMITTING,
        ANY,
        ANY,
        (S.DROP_OWNED_STAGING, S.SETTLE_OWNED_BACKUP, S.ROLL_FORWARD_COMMIT, S.CLEAR_INTENT),
    ),
    (
        Intent.REMOVING,
        ANY,
        ANY,
        (
            S.DROP_OWNED_STAGING,
            S.SETTLE_OWNED_BACKUP,
            S.FINISH_REMOVE,
            S.CLEAR_INTENT,
            S.DROP_EMPTY_GAME_DIR,
        ),
    ),
    # no intent: only marked leftovers are ours; .lanpeer.part/ is kept for resume
    (NO_INTENT, ANY, ANY, (S.DROP_OWNED_STAGING, S.SETTLE_OWNED_BACKUP, S.CLEAR_INTENT)),
)


@dataclass(frozen=True)
class RecoveryResult:
    game_dir: Path
    recorded: str
    steps: tuple[Step, ...] = ()
    error: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.steps)


def plan(recorded: str, local: bool, backup: bool) -> tuple[Step, ...]:
    for intent, want_local, want_backup, row in RECOVERY_TABLE:
        if intent == recorded and want_local in (ANY, local) and want_backup in (ANY, backup):
            return row
    raise AssertionError(f"recovery table has no row for {recorded}/{local}/{backup}")


def recover_game_dir(game_dir: Path) -> RecoveryResult:
    """Converge one game dir to a consistent state; logs and returns, never raises."""
    paths = GamePaths(game_dir)
    try:
        record = read_intent(paths)
        recorded = record.intent.value if record else NO_INTENT
    except CorruptIntentLog as exc:
        log.warning("%s: %s; recovering conservatively (marked dirs only)", game_dir, exc)
        record, recorded = None, "unreadable"
    done: list[Step] = []
    try:
        planned = plan(
            record.intent if record else NO_INTENT, is_real_dir(paths.local), exists(paths.backup)
        )
        for step in planned:
            if _STEPS[step](paths, record):
                done.append(step)
        steps.sweep_scratch(paths)
    except Exception as exc:  # startup must go on: the intent stays for the next start
        log.exception("%s: recovery of %s failed after %s", game_dir, recorded, done or "no step")
        return RecoveryResult(game_dir, recorded, tuple(done), error=str(exc))
    if done:
        log.info("%s: recovered %s: %s", game_dir, recorded, "; ".join(done))
    return RecoveryResult(game_dir, recorded, tuple(done))


def recover_root(root: Path) -> list[RecoveryResult]:
    """Recover every game dir of a root (call before the library scan). Never raises."""
    try:
        children = sorted(entry.path for entry in os.scandir(root))
    except OSError as exc:
        log.warning("game root %s unavailable, nothing recovered: %s", root, exc)
        return []
    return [recover_game_dir(Path(child)) for child in children if is_real_dir(Path(child))]


def _drop_staging(paths: GamePaths, _record: IntentRecord | None) -> bool:
    return steps.drop(paths.staging)


def _drop_owned_staging(paths: GamePaths, _record: IntentRecord | None) -> bool:
    return is_real_dir(paths.staging) and is_owned(paths.staging) and steps.drop(paths.staging)


def _restore_backup(paths: GamePaths, _record: IntentRecord | None) -> bool:
    steps.restore_backup(paths)
    return True


def _drop_backup(paths: GamePaths, _record: IntentRecord | None) -> bool:
    return steps.drop(paths.backup)


def _settle_owned_backup(paths: GamePaths, record: IntentRecord | None) -> bool:
    if not (is_real_dir(paths.backup) and is_owned(paths.backup)):
        return False
    if is_real_dir(paths.local):
        return steps.drop(paths.backup)
    return _restore_backup(paths, record)


def _roll_forward_commit(paths: GamePaths, record: IntentRecord | None) -> bool:
    assert record is not None
    steps.roll_forward_commit(paths, record)
    return True


def _finish_remove(paths: GamePaths, _record: IntentRecord | None) -> bool:
    steps.finish_remove(paths)
    return True


def _record_installed(paths: GamePaths, _record: IntentRecord | None) -> bool:
    if not (is_real_dir(paths.local) and exists(paths.version)):
        return False
    data = paths.version.read_bytes()[:MAX_VERSION_INI]
    if exists(paths.installed) and paths.installed.read_bytes() == data:
        return False
    fsops.replace_durably(paths.installed, paths.installed_tmp, data)
    return True


def _drop_installed(paths: GamePaths, _record: IntentRecord | None) -> bool:
    if is_real_dir(paths.local) or not exists(paths.installed):
        return False
    fsops.unlink(paths.installed)
    return True


def _clear_intent(paths: GamePaths, _record: IntentRecord | None) -> bool:
    had_log = exists(paths.log)
    clear_intent(paths)
    return had_log


def _drop_empty_game_dir(paths: GamePaths, _record: IntentRecord | None) -> bool:
    return steps.drop_empty_game_dir(paths)


_STEPS: dict[Step, Callable[[GamePaths, IntentRecord | None], bool]] = {
    S.DROP_STAGING: _drop_staging,
    S.DROP_OWNED_STAGING: _drop_owned_staging,
    S.RESTORE_BACKUP: _restore_backup,
    S.DROP_BACKUP: _drop_backup,
    S.SETTLE_OWNED_BACKUP: _settle_owned_backup,
    S.ROLL_FORWARD_COMMIT: _roll_forward_commit,
    S.FINISH_REMOVE: _finish_remove,
    S.RECORD_INSTALLED: _record_installed,
    S.DROP_INSTALLED: _drop_installed,
    S.CLEAR_INTENT: _clear_intent,
    S.DROP_EMPTY_GAME_DIR: _drop_empty_game_dir,
}
