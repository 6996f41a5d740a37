"""``transaction``: record an intent, run the body, clear it; on failure converge via recovery.

Owns the one shape every install transaction and the download commit share, the check that a
game is idle before one starts, and the translation of an ``OSError`` into the daemon's errors.
Never decides what a transaction does; ``transactions`` and ``commit`` do.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from lanpeer.errors import ConflictError, DiskFullError, LanpeerError, TransactionAborted
from lanpeer.install.intent import (
    CorruptIntentLog,
    GamePaths,
    Intent,
    IntentRecord,
    clear_intent,
    exists,
    read_intent,
    write_intent,
)
from lanpeer.install.recovery import recover_game_dir


@contextmanager
def transaction(paths: GamePaths, record: IntentRecord) -> Iterator[None]:
    """Record ``record``, run the body, clear the intent; on failure converge via recovery."""
    try:
        write_intent(paths, record)
        yield
        clear_intent(paths)
    except BaseException as exc:
        # A commit is never finished after an I/O error in this process (its bytes may not
        # be durable); it stays recorded, not downloaded, until startup recovery.
        if record.intent is not Intent.COMMITTING:
            recover_game_dir(paths.game_dir)
        if isinstance(exc, OSError):
            raise _aborted(paths, record, exc) from exc
        raise


def _aborted(paths: GamePaths, record: IntentRecord, exc: OSError) -> LanpeerError:
    name = paths.game_dir.name
    if record.intent is Intent.COMMITTING:
        outcome = "it is not marked downloaded until lanpeerd restarts and finishes the commit"
    else:
        outcome = "the game was returned to a consistent state"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"disk full during {record.intent} of {name}; {outcome}")
    return TransactionAborted(
        f"{record.intent} of {name} aborted: {exc}; {outcome}. Check the disk (dmesg) first"
    )


def require_idle(paths: GamePaths, *, touches_local: bool = True) -> None:
    """No recorded intent; for operations on ``local/``, no ``.local.*`` dir in the way."""
    try:
        recorded = read_intent(paths)
    except CorruptIntentLog as exc:
        raise ConflictError(
            f"{paths.game_dir.name} has an unreadable intent log ({exc}); restart lanpeerd to "
            "recover it"
        ) from exc
    if recorded is not None:
        raise ConflictError(
            f"{paths.game_dir.name} has an unfinished operation; restart lanpeerd to recover it"
        )
    for leftover in (paths.staging, paths.backup):
        if touches_local and exists(leftover):
            raise ConflictError(
                f"{leftover} exists and was not created by this operation; move it away "
                "(it may hold your files) and retry"
            )
