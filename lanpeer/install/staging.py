"""Creating entries inside one staging directory, fd-relative, for the extractor.

Owns the open directory fds. Never resolves a path from the filesystem root, never follows a
symlink (every open is O_NOFOLLOW), never replaces an existing file (O_EXCL), never creates
anything but regular files and directories, and masks modes to at most 0o755.
"""

from __future__ import annotations

import os

from lanpeer.errors import UnsafeArchiveError
from lanpeer.install import fsops

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class StagingDir:
    """Creates entries fd-relative under one directory; never resolves a path from the root."""

    def __init__(self, dest: os.PathLike[str]) -> None:
        self.root = os.open(dest, _DIR_FLAGS)
        self._parent: tuple[tuple[str, ...], int] = ((), self.root)

    def __enter__(self) -> StagingDir:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._drop_parent()
        os.close(self.root)

    def make_dir(self, parts: list[str], perm: int) -> None:
        fsops.step("extract", "/".join(parts))
        parent = self._open_parent(parts[:-1])
        try:
            os.mkdir(parts[-1], (perm & 0o755) | 0o700, dir_fd=parent)
        except FileExistsError:
            os.close(self._open_dir(parts[-1], parent))  # proves it is a real directory

    def create_file(self, parts: list[str], perm: int) -> int:
        fsops.step("extract", "/".join(parts))
        parent = self._open_parent(parts[:-1])
        try:
            return os.open(parts[-1], _NEW_FILE_FLAGS, (perm & 0o755) | 0o600, dir_fd=parent)
        except FileExistsError as exc:
            raise UnsafeArchiveError(f"entry {'/'.join(parts)!r} already exists") from exc

    def _open_parent(self, parts: list[str]) -> int:
        if tuple(parts) == self._parent[0]:
            return self._parent[1]
        self._drop_parent()
        fd = self.root
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            child = self._open_dir(part, fd)
            if fd != self.root:
                os.close(fd)
            fd = child
        self._parent = (tuple(parts), fd)
        return fd

    def _open_dir(self, name: str, parent: int) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except (NotADirectoryError, OSError) as exc:
            raise UnsafeArchiveError(f"{name!r} is not a plain directory") from exc

    def _drop_parent(self) -> None:
        if self._parent[1] != self.root:
            os.close(self._parent[1])
        self._parent = ((), self.root)
