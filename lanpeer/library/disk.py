"""One game directory on disk, read without following symlinks (SPEC §3).

Owns the on-disk rules: which children of a root are games, the states downloaded / installed /
local-only, the version in ``version.ini``, the root-level fingerprint, the list of served files
and fd-relative opening of a served file. Never writes anything and never follows a symlink:
every directory is opened with ``O_NOFOLLOW`` relative to its parent's fd.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import blake3
from lanpeer_proto.paths import MAX_PATH_DEPTH, RESERVED_NAMES, is_game_id, path_problem

VERSION_INI = "version.ini"
LOCAL_DIR = "local"
INSTALLED_RECORD = ".lanpeer.installed"  # = lanpeer.install.intent.INSTALLED_NAME
#: version.ini is a few lines; anything past this is not read (bounded memory on hostile input).
MAX_VERSION_INI = 64 << 10
MAX_VERSION_LENGTH = 256  # GameSummary.version is a Name (256 chars)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class FileStat:
    """One served file: relative path with ``/`` separators, and what identifies its bytes."""

    path: str
    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True)
class GameFacts:
    """What a quick look at the top level of a game dir tells (no recursion)."""

    fingerprint: bytes
    downloaded: bool
    installed: bool


def list_game_ids(root: Path) -> list[str]:
    """Names of the game dirs directly under ``root``; raises OSError if the root cannot be read."""
    with os.scandir(root) as entries:
        return sorted(
            e.name for e in entries if is_game_id(e.name) and e.is_dir(follow_symlinks=False)
        )


def open_dir(path: Path) -> int:
    """An fd of ``path`` itself; refuses it if it is a symlink."""
    return os.open(path, _DIR_FLAGS)


def inspect_game(game_dir: Path) -> GameFacts:
    """Fingerprint of the root level: served names with kind, size, mtime; ``local/`` presence."""
    rows: list[tuple[str, str, int, int]] = []
    downloaded = installed = False
    fd = open_dir(game_dir)
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if entry.name == LOCAL_DIR:
                    installed = stat.S_ISDIR(st.st_mode)
                elif entry.name == VERSION_INI:
                    downloaded = stat.S_ISREG(st.st_mode)
                if entry.name in RESERVED_NAMES or stat.S_ISLNK(st.st_mode):
                    continue
                kind = "d" if stat.S_ISDIR(st.st_mode) else "f"
                rows.append((entry.name, kind, st.st_size, st.st_mtime_ns))
    finally:
        os.close(fd)
    rows.sort()
    digest = blake3.blake3(repr((rows, installed)).encode()).digest()
    return GameFacts(fingerprint=digest, downloaded=downloaded, installed=installed)


def read_version(game_dir: Path, name: str = VERSION_INI) -> str | None:
    """The version in ``version.ini`` (or ``name``), or None if it is not a regular file."""
    try:
        fd = os.open(game_dir / name, _FILE_FLAGS)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, MAX_VERSION_INI)
    finally:
        os.close(fd)
    return parse_version(data.decode("utf-8", errors="replace"))


def read_installed_version(game_dir: Path) -> str | None:
    """The version ``local/`` was extracted from (the install's copy of its ``version.ini``);
    None when not installed by lanpeer, or installed before it kept this record."""
    if not os.path.isdir(game_dir / LOCAL_DIR):
        return None
    return read_version(game_dir, INSTALLED_RECORD)


def parse_version(text: str) -> str:
    """First ``version=`` key in any section (case-insensitive), else the first non-empty line.

    Section headers and ``;``/``#`` comments are not versions, so the fallback skips them.
    """
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines()]
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == "version":
            return _clean(value)
    for line in lines:
        if line and line[0] not in "[;#":
            return _clean(line)
    return ""


def _clean(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    return value[:MAX_VERSION_LENGTH]


def walk_served_files(game_dir: Path) -> list[FileStat]:
    """Every served regular file, recursively, sorted by path.

    Skips root-level reserved names (``local/`` included), symlinks, special files and names a
    peer could not ask for (``path_problem``). Directories are opened fd-relative, O_NOFOLLOW.
    """
    found: list[FileStat] = []
    fd = open_dir(game_dir)
    try:
        _walk(fd, "", found, depth=1)
    finally:
        os.close(fd)
    found.sort(key=lambda f: f.path)
    return found


def _walk(dir_fd: int, prefix: str, found: list[FileStat], depth: int) -> None:
    with os.scandir(dir_fd) as entries:
        children = [(e.name, e.stat(follow_symlinks=False)) for e in entries]
    for name, st in children:
        rel = prefix + name
        if (not prefix and name in RESERVED_NAMES) or path_problem(rel) is not None:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append(FileStat(rel, st.st_size, st.st_mtime_ns, st.st_ino))
        elif stat.S_ISDIR(st.st_mode) and depth < MAX_PATH_DEPTH:
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                _walk(child, rel + "/", found, depth + 1)
            finally:
                os.close(child)


def open_relative(game_dir: Path, rel_path: str) -> int:
    """An O_RDONLY fd of the regular file ``rel_path`` inside ``game_dir``, no symlink anywhere.

    Raises FileNotFoundError if any component is missing, a symlink or not the expected kind.
    """
    parts = rel_path.split("/")
    fd = open_dir(game_dir)
    try:
        for part in parts[:-1]:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        file_fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    except OSError as exc:
        raise FileNotFoundError(f"{rel_path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise FileNotFoundError(f"{rel_path}: not a regular file")
    os.set_blocking(file_fd, True)
    return file_fd
