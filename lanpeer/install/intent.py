"""The per-game intent log ``.lanpeer.json``, the ownership marker and the game dir layout.

Owns the on-disk names of SPEC §3 and the log's JSON shape. Writes go through fsops (atomic:
tmp + fsync + rename + dir fsync). Never guesses: a log that does not parse raises
CorruptIntentLog and recovery decides what that means.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from lanpeer_proto.paths import path_problem

from lanpeer.install import fsops

MARKER = ".lanpeer_owned"
#: Names in a game dir that lanpeer never creates, changes or deletes (SPEC §3).
NEVER_TOUCHED = frozenset({".softlan_game_installed", ".sync"})
PART_NAME = ".lanpeer.part"
INSTALLED_NAME = ".lanpeer.installed"
LOG_FORMAT = 1
#: A log is a few hundred bytes plus the file list of one download commit.
MAX_LOG_BYTES = 64 * 1024 * 1024


class Intent(StrEnum):
    INSTALLING = "Installing"
    UPDATING = "Updating"
    UNINSTALLING = "Uninstalling"
    COMMITTING = "Committing"
    REMOVING = "Removing"


class CorruptIntentLog(ValueError):
    """``.lanpeer.json`` exists but is truncated, garbage or of an unknown shape."""


@dataclass(frozen=True)
class GamePaths:
    game_dir: Path

    @property
    def local(self) -> Path:
        return self.game_dir / "local"

    @property
    def staging(self) -> Path:
        return self.game_dir / ".local.installing"

    @property
    def backup(self) -> Path:
        return self.game_dir / ".local.backup"

    @property
    def log(self) -> Path:
        return self.game_dir / ".lanpeer.json"

    @property
    def log_tmp(self) -> Path:
        return self.game_dir / ".lanpeer.json.tmp"

    @property
    def part(self) -> Path:
        return self.game_dir / ".lanpeer.part"

    @property
    def version(self) -> Path:
        return self.game_dir / "version.ini"

    @property
    def version_tmp(self) -> Path:
        return self.game_dir / ".version.ini.tmp"

    @property
    def installed(self) -> Path:
        """A copy of the ``version.ini`` that ``local/`` was extracted from (never served)."""
        return self.game_dir / INSTALLED_NAME

    @property
    def installed_tmp(self) -> Path:
        return self.game_dir / (INSTALLED_NAME + ".tmp")


@dataclass(frozen=True)
class IntentRecord:
    """One recorded intent; a Committing record carries everything needed to roll forward."""

    intent: Intent
    files: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    version_ini: bytes = b""
    #: Where the staged files are, relative to the game dir: ``.lanpeer.part`` or inside it.
    part: str = ".lanpeer.part"

    def to_json(self) -> bytes:
        body = {
            "format": LOG_FORMAT,
            "intent": self.intent.value,
            "files": list(self.files),
            "removed": list(self.removed),
            "version_ini": base64.b64encode(self.version_ini).decode(),
            "part": self.part,
        }
        return json.dumps(body, indent=1).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> IntentRecord:
        try:
            body = json.loads(raw)
            record = cls(
                intent=Intent(body["intent"]),
                files=_relative_paths(body["files"]),
                removed=_relative_paths(body["removed"]),
                version_ini=base64.b64decode(body["version_ini"], validate=True),
                part=_part_dir(body.get("part", PART_NAME)),
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise CorruptIntentLog(f"unreadable intent log: {exc!r}") from exc
        if body.get("format") != LOG_FORMAT:
            raise CorruptIntentLog(f"unknown intent log format {body.get('format')!r}")
        return record


def _part_dir(value: object) -> str:
    if not isinstance(value, str) or part_dir_problem(value):
        raise ValueError(f"bad staging dir {value!r}")
    return value


def part_dir_problem(relative: str) -> str | None:
    """Why ``relative`` is not ``.lanpeer.part`` or a plain path inside it, or None."""
    if relative == PART_NAME:
        return None
    head, _, rest = relative.partition("/")
    if head != PART_NAME:
        return f"{relative!r} is not inside {PART_NAME}"
    return path_problem(rest)


def _relative_paths(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ValueError("file list is not a list of strings")
    bad = next((p for p in value if path_problem(p)), None)
    if bad is not None:
        raise ValueError(f"bad path {bad!r} in file list: {path_problem(bad)}")
    return tuple(value)


def read_intent(paths: GamePaths) -> IntentRecord | None:
    """The recorded intent, None if there is no log; raises CorruptIntentLog."""
    try:
        fd = os.open(paths.log, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptIntentLog(f"intent log cannot be opened: {exc}") from exc
    try:
        raw = _read_at_most(fd, MAX_LOG_BYTES + 1)
    except OSError as exc:
        raise CorruptIntentLog(f"intent log cannot be read: {exc}") from exc
    finally:
        os.close(fd)  # os.fdopen() of a directory raised and left the fd open
    if len(raw) > MAX_LOG_BYTES:
        raise CorruptIntentLog("intent log is implausibly large")
    return IntentRecord.from_json(raw)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit and (chunk := os.read(fd, limit - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def write_intent(paths: GamePaths, record: IntentRecord) -> None:
    fsops.replace_durably(paths.log, paths.log_tmp, record.to_json())


def clear_intent(paths: GamePaths) -> None:
    """Delete the log; something that is not a file or symlink there is left for a person."""
    if exists(paths.log) and not is_real_dir(paths.log):
        fsops.unlink(paths.log)
        fsops.fsync_dir(paths.game_dir)


def mark_owned(directory: Path) -> None:
    fsops.write_new(directory / MARKER, b"created by lanpeer; safe to delete with this dir\n")


def is_owned(directory: Path) -> bool:
    return is_regular_file(directory / MARKER)


def exists(path: Path) -> bool:
    """True for anything at ``path``, including a dangling symlink."""
    return os.path.lexists(path)


def is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
