"""Blocking scan and hash work, run in worker threads by ``GameLibrary``.

Owns the decisions "is this root available", "did this game change" (fingerprint first, full
walk only when it moved or when asked), and "which files must be hashed again" (chunk hashes are
reused when (path, size, mtime_ns, inode) match). Never touches asyncio; never reads a game whose
fingerprint is unchanged unless forced; never reads an unavailable root as empty.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from lanpeer_proto.messages import Manifest

from lanpeer.library.disk import (
    FileStat,
    inspect_game,
    list_game_ids,
    read_version,
    walk_served_files,
)
from lanpeer.library.index import GameRecord, LibraryIndex
from lanpeer.library.manifest import CHUNK_SIZE, FileHashes, build_manifest, hash_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RootScan:
    root: Path
    game_ids: list[str]
    problem: str | None = None  # why the root is unavailable; None when it was read


#: Fault injection for the tests only ("a cold disk"): with this set to a number of bytes per
#: second in its environment, a daemon hashes no faster than that.
HASH_RATE_ENV = "LANPEER_FAULT_HASH_RATE"
#: A throttled hash sleeps in steps this long, so a cancel stops it promptly.
_THROTTLE_STEP = 0.1


def _fault_hash_rate() -> float | None:
    value = os.environ.get(HASH_RATE_ENV)
    return float(value) if value else None


@dataclass
class HashProgress:
    """Bytes hashed of a game so far; written by the hashing thread, read by the loop."""

    done: int = 0
    total: int = 0
    cancelled: bool = False
    rate: float | None = field(default_factory=_fault_hash_rate)  # bytes/s; None: as fast as
    _started: float | None = field(default=None, repr=False)

    def add(self, n: int) -> None:
        if self.cancelled:
            raise HashCancelled("hashing cancelled")
        self.done += n
        if self.rate:
            self._throttle(self.rate)

    def _throttle(self, rate: float) -> None:
        """Sleep (in the hashing thread) until ``done`` bytes took ``done / rate`` seconds."""
        now = time.monotonic()
        if self._started is None:
            self._started = now
        wake = self._started + self.done / rate
        while (left := wake - time.monotonic()) > 0:
            if self.cancelled:
                raise HashCancelled("hashing cancelled")
            time.sleep(min(left, _THROTTLE_STEP))


class HashCancelled(Exception):
    """The game became busy or the library is closing."""


def scan_root(root: Path, index: LibraryIndex) -> RootScan:
    """The game ids directly under ``root``, or why the root cannot be trusted right now."""
    try:
        game_ids = list_game_ids(root)
    except OSError as exc:
        return RootScan(root, [], f"cannot read game root {root}: {exc.strerror or exc}")
    problem = mount_problem(root, index)
    return RootScan(root, [] if problem else game_ids, problem)


def root_problem(root: Path, index: LibraryIndex) -> str | None:
    """Why ``root`` is unavailable now, or None: asked before a game of it is dropped."""
    if not os.path.isdir(root):
        return f"game root {root} is missing"
    return mount_problem(root, index)


def mount_problem(root: Path, index: LibraryIndex) -> str | None:
    """A root that was a mount point and is not any more is unmounted: its (empty) mount dir
    says nothing about the games, so it is unavailable rather than empty."""
    is_mount = os.path.ismount(root)
    was_mount = index.root_was_mount(root)
    if was_mount and not is_mount:
        return f"game root {root} is no longer mounted"
    if is_mount and not was_mount:
        index.set_root_mount(root, True)
    return None


def locate_game(roots: list[Path], game_id: str) -> Path | None:
    """The first root holding a real (non-symlink) dir named ``game_id``."""
    for root in roots:
        if (root / game_id).is_dir() and not (root / game_id).is_symlink():
            return root
    return None


def refresh_games(
    found: Mapping[str, Path],
    previous: Mapping[str, GameRecord],
    index: LibraryIndex,
    *,
    force: bool,
) -> dict[str, GameRecord | None]:
    """New records for the games whose dirs changed (None: the dir went away), persisted."""
    changed: dict[str, GameRecord | None] = {}
    for game_id, root in found.items():
        before = previous.get(game_id)
        after = _refresh_game(root, game_id, before, index, force=force)
        if after != before:
            changed[game_id] = after
    index.put_games(r for r in changed.values() if r is not None)
    index.delete_games(g for g, r in changed.items() if r is None)
    return changed


def _refresh_game(
    root: Path, game_id: str, before: GameRecord | None, index: LibraryIndex, *, force: bool
) -> GameRecord | None:
    game_dir = root / game_id
    try:
        facts = inspect_game(game_dir)
        if before and not force and before.root == root and before.fingerprint == facts.fingerprint:
            return before
        version = read_version(game_dir) if facts.downloaded else None
        files = walk_served_files(game_dir) if facts.downloaded else []
    except OSError as exc:
        log.info("game dir %s is gone or unreadable: %s", game_dir, exc)
        return None
    keep = (
        before is not None
        and before.manifest_hash is not None
        and before.version == version
        and _same_files(index.file_hashes(game_id), files)
    )
    return GameRecord(
        game_id=game_id,
        root=root,
        fingerprint=facts.fingerprint,
        downloaded=facts.downloaded,
        installed=facts.installed,
        version=version,
        size=sum(f.size for f in files),
        manifest_hash=before.manifest_hash if keep and before else None,
    )


def _same_files(cached: Mapping[str, FileHashes], files: list[FileStat]) -> bool:
    return len(cached) == len(files) and all(
        f.path in cached and cached[f.path].matches(f) for f in files
    )


@dataclass
class HashResult:
    manifest: Manifest
    files: list[FileHashes] = field(default_factory=list)
    size: int = 0
    files_hashed: int = 0  # files read from disk; the rest reused cached chunk hashes


def hash_game(
    record: GameRecord, index: LibraryIndex, progress: HashProgress, chunk_size: int = CHUNK_SIZE
) -> HashResult:
    """The manifest of a downloaded game, reusing cached chunk hashes of unchanged files."""
    game_dir = record.root / record.game_id
    files = walk_served_files(game_dir)
    cached = index.file_hashes(record.game_id)
    progress.total = sum(f.size for f in files)
    hashed: list[FileHashes] = []
    read = 0
    for file in files:
        reuse = cached.get(file.path)
        if reuse is not None and reuse.matches(file) and reuse.chunk_size == chunk_size:
            hashed.append(replace(reuse, stat=file))
            progress.add(file.size)
        else:
            hashed.append(hash_file(game_dir, file, progress.add, chunk_size))
            read += 1
    manifest = build_manifest(record.game_id, record.version or "", hashed)
    return HashResult(manifest, hashed, progress.total, read)


def still_current(record: GameRecord, result: HashResult) -> bool:
    """True if the game's served files are still exactly the ones ``result`` hashed."""
    try:
        walked = walk_served_files(record.root / record.game_id)
    except OSError:
        return False
    return walked == [f.stat for f in result.files]


def store_if_current(record: GameRecord, result: HashResult, index: LibraryIndex) -> bool:
    """Persist ``record`` and the file hashes of ``result`` if they still describe the disk."""
    if not still_current(record, result):
        return False
    index.put_manifest(record, result.files)
    return True


def load_manifest(record: GameRecord, index: LibraryIndex) -> Manifest | None:
    """The manifest rebuilt from the index, if it still names ``record.manifest_hash``."""
    files = list(index.file_hashes(record.game_id).values())
    manifest = build_manifest(record.game_id, record.version or "", files)
    return manifest if manifest.manifest_hash == record.manifest_hash else None
