"""The only module that talks to libarchive: safe extraction of one archive into a staging dir.

Owns format detection (by content), entry-type and name checks, byte budgets and ratio caps.
Never creates anything but regular files and directories, never writes outside ``dest``, never
follows a symlink, never restores owners, setuid/setgid or world-write bits, never asks for a
passphrase. On error ``dest`` holds a partial tree that the caller (a transaction) deletes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libarchive
from libarchive import ffi

from lanpeer.errors import (
    ArchiveBombError,
    BadArchiveError,
    DiskFullError,
    EncryptedArchiveError,
    InstallCancelled,
    UnsafeArchiveError,
)
from lanpeer.install.names import NameRegistry, entry_name_problem, split_entry_name
from lanpeer.install.staging import StagingDir

MiB = 1024 * 1024
GiB = 1024 * MiB

#: Named formats, not "all": "all" includes mtree, whose entries can pull in files of this host.
_FORMATS = ("zip", "7zip", "rar", "rar5", "tar")
#: Built-in decompressors only; "all" may spawn external programs (lrzip, lzop, grzip).
_FILTERS = ("gzip", "bzip2", "xz", "lzma", "zstd", "lz4")
_READ_BLOCK = 1 * MiB

_entry_is_encrypted = ffi.libarchive.archive_entry_is_encrypted
_entry_is_encrypted.argtypes = [ctypes.c_void_p]
_entry_is_encrypted.restype = ctypes.c_int


@dataclass(frozen=True)
class ExtractLimits:
    """Caps for one extraction; the defaults fit real LAN-party games with room to spare."""

    #: The largest current games unpack to ~150 GB.
    max_bytes: int = 256 * GiB
    #: Unpacked / archive size. Game data compresses well under 10:1; bombs go past 1000:1.
    max_ratio: float = 100.0
    #: One entry's unpacked / consumed bytes; DEFLATE itself cannot exceed ~1032:1.
    max_entry_ratio: float = 1100.0
    #: Ratios are only judged past this many bytes: tiny files of zeros are legitimately dense.
    ratio_slack: int = 16 * MiB
    #: Bounded so a header-only archive cannot make us create millions of inodes.
    max_entries: int = 200_000
    #: Matches the wire path depth limit (lanpeer_proto.paths.MAX_PATH_DEPTH).
    max_depth: int = 32
    #: Never fill the disk: this much stays free for the OS and other writers.
    free_margin: int = 256 * MiB
    #: fsync each file before the staging dir is renamed into place (power-loss safety).
    durable: bool = True


@dataclass
class ExtractStats:
    archive_bytes: int
    format_name: str = ""
    files: int = 0
    directories: int = 0
    bytes_written: int = 0


def extract_archive(
    archive: Path,
    dest: Path,
    limits: ExtractLimits | None = None,
    *,
    names: NameRegistry | None = None,
    cancel: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExtractStats:
    """Extract ``archive`` (format by content) into the existing directory ``dest``.

    Pass one ``names`` registry to several calls that fill the same ``dest`` so duplicates and
    case collisions across archives are refused too. Setting ``cancel`` stops the extraction
    at the next block with InstallCancelled. ``progress(n)`` is called at every block with the
    archive bytes read so far (of ``archive_bytes``). Raises UnsafeArchiveError (or its
    subclasses), BadArchiveError or DiskFullError.
    """
    limits = limits or ExtractLimits()
    budget, by_free_space = _budget(dest, limits)
    archive_fd = os.open(archive, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        stats = ExtractStats(archive_bytes=os.fstat(archive_fd).st_size)
        _refuse_truncated_zip_names(archive_fd)
        os.lseek(archive_fd, 0, os.SEEK_SET)  # the pre-scan moved the shared offset
        with _open_reader(archive_fd) as reader, StagingDir(dest) as staging:
            run = _Extraction(reader, staging, limits, stats, budget, by_free_space)
            run.names = names if names is not None else NameRegistry()
            run.cancel = cancel
            run.progress = progress
            for entry in reader:
                run.add(entry)
            stats.format_name = _text(reader.format_name)
        if stats.files + stats.directories == 0 and stats.archive_bytes > 0:
            # A tar whose first blocks are zeros reads as "end of archive" at once: an empty
            # local/ reported as installed is a lie, so a non-empty archive must yield entries.
            raise BadArchiveError(
                f"{archive.name} holds no files ({stats.archive_bytes} bytes, nothing readable): "
                "it is damaged; delete the game (`peer-cli remove`) and download it again"
            )
        return stats
    except libarchive.ArchiveError as exc:
        raise _translate(archive, exc) from exc
    finally:
        os.close(archive_fd)


def _refuse_truncated_zip_names(fd: int) -> None:
    """libarchive cuts a zip name at a NUL byte (``a.dll\\0.txt`` becomes ``a.dll``), a silent
    rewrite; zipfile keeps the raw name (``orig_filename``), so zips are pre-scanned with it."""
    with open(os.dup(fd), "rb") as archive:
        try:
            names = [info.orig_filename for info in zipfile.ZipFile(archive).infolist()]
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return  # not a zip (or a broken one): libarchive decides
    bad = next((name for name in names if "\x00" in name), None)
    if bad is not None:
        raise UnsafeArchiveError(f"refused entry {bad!r}: NUL byte in name")


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _budget(dest: Path, limits: ExtractLimits) -> tuple[int, bool]:
    available = free_bytes(dest) - limits.free_margin
    if available <= 0:
        raise DiskFullError(
            f"not enough free space in {dest}: {free_bytes(dest) // MiB} MiB free, "
            f"{limits.free_margin // MiB} MiB must stay free; free some space and retry"
        )
    return min(available, limits.max_bytes), available < limits.max_bytes


@contextmanager
def _open_reader(fd: int) -> Iterator[Any]:
    archive_p = ffi.read_new()
    try:
        for name in _FORMATS:
            ffi.get_read_format_function(name)(archive_p)
        for name in _FILTERS:
            ffi.get_read_filter_function(name)(archive_p)
        ffi.read_open_fd(archive_p, fd, _READ_BLOCK)
        yield libarchive.read.ArchiveRead(archive_p)
    finally:
        ffi.read_free(archive_p)


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def _translate(archive: Path, exc: libarchive.ArchiveError) -> Exception:
    message = _text(exc.msg)
    if "ncrypt" in message or "assphrase" in message:
        return EncryptedArchiveError(
            f"{archive.name} is encrypted ({message}); lanpeer does not extract encrypted "
            "archives: ask the game's owner for an unencrypted copy"
        )
    return BadArchiveError(f"{archive.name} could not be read: {message}")


def _entry_kind(entry: Any) -> str:
    if entry.issym:
        return "symbolic link"
    if entry.islnk:
        return "hard link"
    if entry.isdir:
        return "directory"
    if entry.isreg:
        return "file"
    if entry.isfifo:
        return "FIFO"
    if entry.isdev:
        return "device file"
    return "special file"


@dataclass
class _Extraction:
    reader: Any
    staging: StagingDir
    limits: ExtractLimits
    stats: ExtractStats
    budget: int
    by_free_space: bool
    names: NameRegistry = field(default_factory=NameRegistry)
    cancel: threading.Event | None = None
    progress: Callable[[int], None] | None = None
    entries: int = 0

    def add(self, entry: Any) -> None:
        self._charge(0, 0, 0, entry.pathname)  # the cancel check; no bytes yet
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise ArchiveBombError(f"archive has more than {self.limits.max_entries} entries")
        if _entry_is_encrypted(entry._entry_p):
            raise EncryptedArchiveError(
                "archive contains encrypted entries; lanpeer does not extract encrypted "
                "archives: ask the game's owner for an unencrypted copy"
            )
        name, kind = entry.pathname, _entry_kind(entry)
        parts = self._check_name(name, kind == "directory")
        if kind == "directory":
            self.staging.make_dir(parts, entry.perm)
            self.stats.directories += 1
        elif kind == "file":
            self._write_file(entry, parts)
        else:
            raise UnsafeArchiveError(f"entry {name!r} is a {kind}; only files and directories")

    def _check_name(self, name: object, is_dir: bool) -> list[str]:
        if name is None:  # e.g. RAR taking a repeated name for a split-file continuation
            raise UnsafeArchiveError("an entry has no name (a repeated or continued entry?)")
        if not isinstance(name, str):
            raise UnsafeArchiveError(f"entry name {name!r} is not valid UTF-8")
        problem = entry_name_problem(name, self.limits.max_depth)
        parts = split_entry_name(name)
        problem = problem or self.names.claim(parts, is_dir)
        if problem:
            raise UnsafeArchiveError(f"refused entry {name!r}: {problem}")
        return parts

    def _write_file(self, entry: Any, parts: list[str]) -> None:
        declared: int | None = entry.size  # None when the format does not say
        if declared is not None and declared > self.budget - self.stats.bytes_written:
            self._over_budget(f"entry {'/'.join(parts)!r} declares {declared} bytes")
        fd = self.staging.create_file(parts, entry.perm)
        try:
            self._copy_data(fd, "/".join(parts), declared)
            if self.limits.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        self.stats.files += 1

    def _copy_data(self, fd: int, name: str, declared: int | None) -> None:
        """Write each block where libarchive says it goes (zero-copy); holes count as bytes.

        Data past the entry's declared size is refused: some readers (RAR 4 stored entries)
        hand out a whole read block before they stop at the declared size."""
        archive_p, block, size, offset = self.reader._pointer, *_block_out_params()
        consumed_at_start, position = self.reader.bytes_read, 0
        refs = ctypes.byref(block), ctypes.byref(size), ctypes.byref(offset)
        while (status := ffi.read_data_block(archive_p, *refs)) != ffi.ARCHIVE_EOF:
            if status != ffi.ARCHIVE_OK:  # libarchive-c only logs ARCHIVE_WARN (e.g. bad CRC)
                problem = _text(ffi.error_string(archive_p))
                raise BadArchiveError(f"entry {name!r} could not be read: {problem}")
            if offset.value < position:
                raise BadArchiveError(f"entry {name!r} has overlapping data blocks")
            end = offset.value + size.value
            if declared is not None and end > declared:
                raise BadArchiveError(
                    f"entry {name!r} holds more data than the {declared} bytes it declares"
                )
            self._charge(end - position, end, self.reader.bytes_read - consumed_at_start, name)
            if size.value:
                _write_all_at(
                    fd, (ctypes.c_char * size.value).from_address(block.value or 0), offset.value
                )
            position = end
        if declared is not None and declared > position:  # a trailing hole
            consumed = self.reader.bytes_read - consumed_at_start
            self._charge(declared - position, declared, consumed, name)
            os.ftruncate(fd, declared)

    def _charge(self, n: int, written: int, consumed: int, name: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise InstallCancelled(f"cancelled while extracting {name!r}; rolled back")
        if self.progress is not None:
            self.progress(ffi.filter_bytes(self.reader._pointer, -1))
        self.stats.bytes_written += n
        total, limits = self.stats.bytes_written, self.limits
        if total > self.budget:
            self._over_budget(f"unpacked size passed {self.budget} bytes at {name!r}")
        if total > limits.max_ratio * self.stats.archive_bytes + limits.ratio_slack:
            raise ArchiveBombError(
                f"archive unpacks to over {limits.max_ratio:.0f}x its size (at {name!r}); "
                "refused as a decompression bomb"
            )
        if written > limits.max_entry_ratio * consumed + limits.ratio_slack:
            raise ArchiveBombError(
                f"entry {name!r} unpacks to over {limits.max_entry_ratio:.0f}x its compressed "
                "size; refused as a decompression bomb"
            )

    def _over_budget(self, what: str) -> None:
        if self.by_free_space:
            raise DiskFullError(
                f"{what}, more than the free space allows "
                f"(keeping {self.limits.free_margin // MiB} MiB free); free some space and retry"
            )
        raise ArchiveBombError(f"{what}, over the {self.limits.max_bytes} byte limit")


def _block_out_params() -> tuple[ctypes.c_void_p, ctypes.c_size_t, ctypes.c_longlong]:
    return ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_longlong()


def _write_all_at(fd: int, block: ctypes.Array[ctypes.c_char], offset: int) -> None:
    data = memoryview(block).cast("B")
    try:
        while data:
            written = os.pwrite(fd, data, offset)
            data, offset = data[written:], offset + written
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"disk full while extracting: {exc.strerror}") from exc
        raise
