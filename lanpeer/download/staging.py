"""The ``.lanpeer.part/`` directory of one download: staged files, verified-chunk state, resume.

Owns files under ``<game_dir>/.lanpeer.part/`` only; never touches anything else in the game dir.
Blocking calls (``open``, ``ftruncate``, ``pwrite``, ``fsync``) are made from worker threads by
the caller; ``close`` waits for writes in progress so no thread writes into a recycled fd.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import threading
from pathlib import Path

from lanpeer_proto.messages import Manifest, ManifestFile

from lanpeer.download.plan import ChunkRef, chunk_count
from lanpeer.errors import DiskFullError

PART_DIR = ".lanpeer.part"
# Staged files sit at .lanpeer.part/<path> (install's commit_download moves them from there).
# The resume state and its scratch file use reserved names, which no manifest path can start with.
STATE_NAME = ".lanpeer.json"
STATE_TMP = ".lanpeer_owned"
STATE_FORMAT = 1
# A staged file's written bytes are flushed and dropped from the page cache this often.
FLUSH_EVERY = 64 << 20


def disk_full(exc: OSError, where: Path) -> DiskFullError:
    return DiskFullError(
        f"disk full while writing {where}: free some space on that disk and download again"
    )


class VerifiedChunks:
    """One bit per chunk of every staged file: set once the chunk's bytes are verified on disk."""

    def __init__(self, files: list[ManifestFile]) -> None:
        self.bits = {f.path: bytearray((chunk_count(f) + 7) // 8) for f in files}

    def has(self, c: ChunkRef) -> bool:
        return bool(self.bits[c.path][c.index >> 3] & (1 << (c.index & 7)))

    def mark(self, c: ChunkRef) -> None:
        self.bits[c.path][c.index >> 3] |= 1 << (c.index & 7)

    def encode(self) -> dict[str, str]:
        return {p: base64.b64encode(b).decode() for p, b in self.bits.items()}

    def load(self, saved: dict[str, str]) -> None:
        for path, text in saved.items():
            raw = base64.b64decode(text)
            if path in self.bits and len(raw) == len(self.bits[path]):
                self.bits[path][:] = raw


class PartDir:
    """Staged files of one download plus the state that lets a restart resume it."""

    def __init__(self, game_dir: Path, flush_every: int = FLUSH_EVERY) -> None:
        self.dir = game_dir / PART_DIR
        self._flush_every = flush_every
        self._unflushed: dict[int, int] = {}  # fd -> bytes written since its last flush
        self._sizes: dict[str, int] = {}
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()
        # Saves come from worker threads; a cancelled checkpoint's thread may still be writing
        # the scratch file when the final save starts, so saves take turns.
        self._save_lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        # One pwrite at a time: concurrent writers to one inode spin on its lock in the kernel
        # (measured: ~4 CPU-s of sys time per GiB with 6 writer threads); hashing stays parallel.
        self._writing = threading.Lock()
        self._active = 0
        self._closed = False
        self._dirty: set[int] = set()
        # Recorded with the resume state: install once a restart has resumed and finished it.
        self.then_install = False
        # The version the user asked for (``--version``): a resumed download keeps to it.
        self.pin: str | None = None

    # -- resume state (called from a worker thread) --------------------------------------------

    def load(self, manifest: Manifest, files: list[ManifestFile]) -> VerifiedChunks:
        """Verified chunks saved for ``manifest``; any other version's staging is wiped first."""
        verified = VerifiedChunks(files)
        self._sizes = {f.path: f.size for f in files}
        state = self._read_state()
        if state is None or state.get("manifest_hash") != manifest.manifest_hash.hex():
            self.remove()
        else:
            saved = state.get("files")
            verified.load(saved if isinstance(saved, dict) else {})
        self.dir.mkdir(parents=True, exist_ok=True)
        return verified

    def saved_manifest_hash(self) -> bytes | None:
        """The version the saved resume state belongs to, if there is one."""
        state = self._read_state()
        try:
            return bytes.fromhex(str(state["manifest_hash"])) if state else None
        except (KeyError, ValueError):
            return None

    def saved_then_install(self) -> bool:
        """Whether the saved download was to be installed afterwards (older records: False)."""
        state = self._read_state()
        return bool(state and state.get("then_install") is True)

    def saved_pin(self) -> str | None:
        """The version the saved download was pinned to (None: it follows the newest)."""
        state = self._read_state()
        pin = state.get("pin") if state else None
        return pin if isinstance(pin, str) else None

    def _read_state(self) -> dict[str, object] | None:
        try:
            state = json.loads((self.dir / STATE_NAME).read_text())
        except (OSError, ValueError):
            return None
        ok = isinstance(state, dict) and state.get("format") == STATE_FORMAT
        return state if ok else None

    def save(self, manifest_hash: bytes, bits: dict[str, str]) -> None:
        """Make written chunks durable, then atomically record which chunks are verified."""
        with self._save_lock:
            self._save(manifest_hash, bits)

    def _save(self, manifest_hash: bytes, bits: dict[str, str]) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for fd in dirty:
            os.fdatasync(fd)
        doc = {
            "format": STATE_FORMAT,
            "manifest_hash": manifest_hash.hex(),
            "then_install": self.then_install,
            "pin": self.pin,
            "files": bits,
        }
        tmp = self.dir / STATE_TMP
        try:
            with open(tmp, "w") as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.dir / STATE_NAME)
            fsync_dir(self.dir)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise disk_full(exc, self.dir) from exc
            raise

    # -- chunk bytes (called from worker threads) ----------------------------------------------

    def write(self, c: ChunkRef, data: bytes) -> bool:
        """Write verified bytes; False if the part dir was closed meanwhile (cancel)."""
        with self._lock:
            if self._closed:
                return False
            self._active += 1
        try:
            fd = self._fd(c.path)
            with self._writing:
                os.pwrite(fd, data, c.offset)
            with self._lock:
                self._dirty.add(fd)
                unflushed = self._unflushed.get(fd, 0) + len(data)
                flush = unflushed >= self._flush_every
                self._unflushed[fd] = 0 if flush else unflushed
            if flush:
                _write_back(fd)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise disk_full(exc, self.dir) from exc
            raise
        finally:
            with self._lock:
                self._active -= 1
                self._idle.notify_all()
        return True

    def _fd(self, path: str) -> int:
        with self._lock:
            fd = self._fds.get(path)
            if fd is None:
                fd = self._open(path)
                self._fds[path] = fd
            return fd

    def _open(self, path: str) -> int:
        target = self.dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            size = self._sizes[path]
            if os.fstat(fd).st_size != size:
                # Sized, not block-reserved: on ext4 posix_fallocate made every later write
                # convert unwritten extents (measured: 4-7x the kernel CPU, 3-5x slower). The
                # free-space check runs first, and ENOSPC from a write fails the download cleanly.
                os.ftruncate(fd, size)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def ensure_file(self, path: str) -> None:
        """Create (and size) a staged file even if it has no chunk to write (empty files)."""
        self._fd(path)

    def close(self) -> None:
        """Wait for writes in progress, then close every fd. Later writes are refused."""
        with self._lock:
            self._closed = True
            while self._active:
                self._idle.wait()
            fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def finish(self) -> None:
        """Flush every staged file to disk before commit."""
        with self._lock:
            fds = list(self._fds.values())
        for fd in fds:
            os.fsync(fd)
        self.close()
        fsync_tree(self.dir)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def allocated_bytes(self) -> int:
        """Bytes already reserved by staged files (counted as free by the space check)."""
        total = 0
        for path, size in self._sizes.items():
            try:
                total += min(size, (self.dir / path).stat().st_blocks * 512)
            except OSError:
                continue
        return total


def _write_back(fd: int) -> None:
    """Put a staged file's written bytes on disk and drop them from the page cache.

    Without it a download piles up GiBs of dirty pages: the kernel then writes them back in
    bursts that stall the writers, reclaim competes with the receive path for the CPU, and the
    fsync before commit waits for all of it. Flushing every FLUSH_EVERY bytes keeps the
    writeback steady and the final fsync short; the staged bytes are not read again before
    commit (a rename), so their cache is dropped.
    """
    os.fdatasync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    if not root.is_dir():
        return
    for dirpath, _dirs, _files in os.walk(root):
        fsync_dir(Path(dirpath))
