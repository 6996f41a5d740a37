"""Exclusive lock files held for a daemon's lifetime: one per control socket, one per state dir.

Owns ``flock`` (POSIX, via fcntl): the kernel releases a lock when its holder dies, so a crash
never leaves a lock held. Never waits: a lock someone holds is an error at once, naming the pid.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from lanpeer.errors import AlreadyRunningError


class LockFile:
    """``take()`` or raise ``AlreadyRunningError``; ``release()`` unlinks the file and unlocks."""

    def __init__(self, path: Path, refusal: str) -> None:
        self.path = path
        self._refusal = refusal  # completes "another lanpeerd (pid N) ..."
        self._fd: int | None = None

    def take(self) -> None:
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                message = f"another lanpeerd (pid {holder}) {self._refusal}"
                raise AlreadyRunningError(message) from None
            if not _same_file(fd, self.path):
                os.close(fd)  # the holder unlinked it as we opened it: lock the new one
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still locked: no one else can be holding this file
        os.close(self._fd)
        self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)
