"""Every filesystem step of an install transaction, counted, so a test can crash at step k.

Owns the durable primitives (fsync'd writes, renames with a directory fsync, rmtree in steps).
Never retries a failed fsync or rename: the error propagates and the transaction aborts
(after EIO Linux may drop dirty pages, so a retried fsync can lie).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path

#: Called before each step with (operation, path); a test hook may raise or kill the process.
StepHook = Callable[[str, str], None]

_hook: StepHook | None = None


def set_step_hook(hook: StepHook | None) -> None:
    """Install (or remove with None) the hook called before every counted step."""
    global _hook
    _hook = hook


def step(operation: str, path: Path | str) -> None:
    """Announce one filesystem step; extraction calls this once per entry it creates."""
    if _hook is not None:
        _hook(operation, str(path))


def mkdir(path: Path) -> None:
    step("mkdir", path)
    path.mkdir(mode=0o755)


def rename(src: Path, dst: Path) -> None:
    """Rename within one directory tree; ``dst`` must not be a non-empty directory."""
    step("rename", src)
    os.rename(src, dst)


def unlink(path: Path) -> None:
    step("unlink", path)
    path.unlink()


def fsync_file(path: Path) -> None:
    step("fsync", path)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    step("fsync", path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(top: Path) -> None:
    """fsync every directory under ``top`` (and ``top``), one counted step each."""
    for directory, _dirs, _files in os.walk(top):
        fsync_dir(Path(directory))


def rmdir(path: Path) -> None:
    """Remove an empty directory."""
    step("rmdir", path)
    path.rmdir()


def write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (must not exist, never through a symlink), write and fsync it."""
    step("write", path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(path: Path, tmp: Path, data: bytes) -> None:
    """Atomic replace: tmp + fsync + rename + directory fsync (PostgreSQL durable_rename)."""
    if tmp.exists() or tmp.is_symlink():
        unlink(tmp)
    write_new(tmp, data)
    rename(tmp, path)
    fsync_dir(path.parent)


def rmtree(path: Path, on_file: Callable[[str, int], None] | None = None) -> None:
    """Delete a directory one top-level child per step, so a crash can leave it half gone;
    ``on_file(child, size)`` after each file is gone (``child``: the top-level entry it was in;
    ``size``: its lstat size), for progress."""
    for child in sorted(os.scandir(path), key=lambda e: e.name):
        step("rmtree", child.path)
        if not child.is_dir(follow_symlinks=False):
            size = child.stat(follow_symlinks=False).st_size
            os.unlink(child.path)
            if on_file is not None:
                on_file(child.name, size)
        elif on_file is None:
            shutil.rmtree(child.path)
        else:
            _rmtree_by_file(child.path, partial(on_file, child.name))
    rmdir(path)


def _rmtree_by_file(top: str, on_file: Callable[[int], None]) -> None:
    """``shutil.rmtree`` file by file, ``on_file(size)`` after each; never follows a link."""
    for directory, dirs, files in os.walk(top, topdown=False, onerror=_raise):
        for name in files:  # files and links to files
            path = os.path.join(directory, name)
            size = os.lstat(path).st_size
            os.unlink(path)
            on_file(size)
        for name in dirs:  # emptied already (bottom-up), or a link to a directory
            path = os.path.join(directory, name)
            if os.path.islink(path):
                os.unlink(path)
            else:
                os.rmdir(path)
    os.rmdir(top)


def _raise(error: OSError) -> None:
    raise error
