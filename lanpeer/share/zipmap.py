"""The byte layout of a game as one ZIP of stored entries, computed and never built (SPEC §9c).

Owns the ZIP format: local headers, the central directory, ZIP64 records past 4 GiB or 65,535
entries, and the map byte offset -> header bytes | (file, offset). The layout is a pure function
of the entry list (names, sizes, CRC-32s): no clock, no disk, no socket, so the same game always
gives the same bytes and a strong ETag can name them. Never compresses and never reads a file.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_EOCD = struct.Struct("<IHHHHIIH")
_EXTRA_HEADER = struct.Struct("<HH")

_LIMIT32 = 0xFFFFFFFF  # a 32-bit field holding this value means "see the ZIP64 extra"
_LIMIT16 = 0xFFFF
_ZIP64_EXTRA_ID = 0x0001
_UTF8_NAMES = 1 << 11
_STORED = 0
_NEEDS_20, _NEEDS_ZIP64 = 20, 45
_MADE_BY_UNIX = (3 << 8) | _NEEDS_ZIP64
_FILE_MODE = 0o100644 << 16  # regular file, rw-r--r-- (external attributes, Unix made-by)
#: Every entry says 1980-01-01 00:00 (the first DOS date): a timestamp from the disk would make
#: the bytes depend on more than the manifest, and the ETag could no longer be strong.
_DOS_TIME, _DOS_DATE = 0, (0 << 9) | (1 << 5) | 1


@dataclass(frozen=True)
class ZipEntry:
    """One stored file of the archive: its name inside the ZIP (``/`` separated), size, CRC."""

    name: str
    size: int
    crc32: int


@dataclass(frozen=True)
class HeaderBytes:
    """Archive bytes that are not file contents (headers, the central directory)."""

    data: bytes


@dataclass(frozen=True)
class FileBytes:
    """``length`` bytes of entry ``index``'s file from ``offset`` on."""

    index: int
    offset: int
    length: int


Piece = HeaderBytes | FileBytes


class ZipLayout:
    """The archive of ``entries`` in order: ``size`` and ``pieces(start, end)``."""

    def __init__(self, entries: Sequence[ZipEntry]) -> None:
        self.entries = tuple(entries)
        # Segment i starts at _starts[i]; a segment is header bytes (bytes) or a file (int index).
        self._starts: list[int] = []
        self._segments: list[bytes | int] = []
        offset = 0
        central: list[bytes] = []
        for index, entry in enumerate(self.entries):
            name = entry.name.encode("utf-8")
            header = _local_header(entry, name)
            central.append(_central_header(entry, name, offset))
            offset = self._add(offset, header)
            if entry.size:
                self._starts.append(offset)
                self._segments.append(index)
                offset += entry.size
        directory = b"".join(central)
        self.size = self._add(
            offset, directory + _end_records(len(central), len(directory), offset)
        )

    def _add(self, offset: int, data: bytes) -> int:
        self._starts.append(offset)
        self._segments.append(data)
        return offset + len(data)

    def _length(self, segment: int) -> int:
        value = self._segments[segment]
        return self.entries[value].size if isinstance(value, int) else len(value)

    def pieces(self, start: int, end: int) -> Iterator[Piece]:
        """The archive bytes ``[start, end)`` as header bytes and file ranges, in order."""
        if not 0 <= start <= end <= self.size:
            raise ValueError(f"range {start}-{end} is outside the archive of {self.size} bytes")
        segment = bisect.bisect_right(self._starts, start) - 1
        while start < end:
            seg_start = self._starts[segment]
            take = min(end, seg_start + self._length(segment)) - start
            value = self._segments[segment]
            inner = start - seg_start
            if isinstance(value, int):
                yield FileBytes(value, inner, take)
            else:
                yield HeaderBytes(value[inner : inner + take])
            start += take
            segment += 1


def _zip64_extra(*values: int) -> bytes:
    if not values:
        return b""
    body = struct.pack(f"<{len(values)}Q", *values)
    return _EXTRA_HEADER.pack(_ZIP64_EXTRA_ID, len(body)) + body


def _local_header(entry: ZipEntry, name: bytes) -> bytes:
    big = entry.size >= _LIMIT32
    # A ZIP64 local header carries both sizes (APPNOTE 4.5.3), stored entries so both equal.
    extra = _zip64_extra(entry.size, entry.size) if big else b""
    size32 = _LIMIT32 if big else entry.size
    fixed = _LOCAL.pack(
        0x04034B50, _NEEDS_ZIP64 if big else _NEEDS_20, _UTF8_NAMES, _STORED, _DOS_TIME,
        _DOS_DATE, entry.crc32, size32, size32, len(name), len(extra),
    )  # fmt: skip
    return fixed + name + extra


def _central_header(entry: ZipEntry, name: bytes, offset: int) -> bytes:
    big_size, big_offset = entry.size >= _LIMIT32, offset >= _LIMIT32
    # Only the fields that overflow go into the extra, in this order (APPNOTE 4.5.3).
    values = [entry.size, entry.size] if big_size else []
    if big_offset:
        values.append(offset)
    extra = _zip64_extra(*values)
    size32 = _LIMIT32 if big_size else entry.size
    fixed = _CENTRAL.pack(
        0x02014B50, _MADE_BY_UNIX, _NEEDS_ZIP64 if values else _NEEDS_20, _UTF8_NAMES, _STORED,
        _DOS_TIME, _DOS_DATE, entry.crc32, size32, size32, len(name), len(extra), 0, 0, 0,
        _FILE_MODE, _LIMIT32 if big_offset else offset,
    )  # fmt: skip
    return fixed + name + extra


def _end_records(count: int, directory_size: int, directory_offset: int) -> bytes:
    """End of central directory, preceded by the ZIP64 record and locator when one is needed."""
    zip64 = count >= _LIMIT16 or directory_size >= _LIMIT32 or directory_offset >= _LIMIT32
    tail = b""
    if zip64:
        record_offset = directory_offset + directory_size
        tail = _ZIP64_EOCD.pack(
            0x06064B50, _ZIP64_EOCD.size - 12, _MADE_BY_UNIX, _NEEDS_ZIP64, 0, 0, count, count,
            directory_size, directory_offset,
        ) + _ZIP64_LOCATOR.pack(0x07064B50, 0, record_offset, 1)  # fmt: skip
    count16 = _LIMIT16 if zip64 and count >= _LIMIT16 else count
    return tail + _EOCD.pack(
        0x06054B50, 0, 0, count16, count16,
        _LIMIT32 if directory_size >= _LIMIT32 else directory_size,
        _LIMIT32 if directory_offset >= _LIMIT32 else directory_offset, 0,
    )  # fmt: skip
