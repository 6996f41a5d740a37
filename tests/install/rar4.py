"""A tiny RAR 4.x writer, for tests only: no free tool writes RAR, so the RAR path of the
extractor is fed archives built here from the RAR 4 technote.

Only STORED entries (method 0x30, no compression), Unix host, no volumes, no encryption.
Block layout: HEAD_CRC u16, HEAD_TYPE u8, HEAD_FLAGS u16, HEAD_SIZE u16, then the fields of
the type; HEAD_CRC is the low 16 bits of CRC32 over the header from HEAD_TYPE on.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

MARKER = b"Rar!\x1a\x07\x00"
MAIN_HEAD, FILE_HEAD, END_HEAD = 0x73, 0x74, 0x7B
LONG_BLOCK = 0x8000  # HEAD_FLAGS: ADD_SIZE (PACK_SIZE for files) follows the header
SKIP_IF_UNKNOWN = 0x4000
DIRECTORY = 0xE0  # file HEAD_FLAGS: dictionary bits all set means a directory
HOST_UNIX, UNP_VER, STORED = 3, 20, 0x30
DOS_TIME = (2024 - 1980) << 25 | 6 << 21 | 15 << 16 | 12 << 11 | 30 << 5  # 2024-06-15 12:30


def _block(head_type: int, flags: int, fields: bytes) -> bytes:
    body = struct.pack("<BHH", head_type, flags, 7 + len(fields)) + fields
    return struct.pack("<H", zlib.crc32(body) & 0xFFFF) + body


def write_rar4(
    path: Path,
    entries: list[tuple[str, bytes]],
    *,
    declared: dict[str, int] | None = None,
    modes: dict[str, int] | None = None,
    flags: dict[str, int] | None = None,
) -> None:
    """Write ``entries`` (name, data) as a RAR 4 archive; a name ending in '/' is a directory.

    For hostile archives, by entry name: ``declared`` overrides UNP_SIZE (the data is still
    written whole), ``modes`` the Unix ATTR (libarchive takes the entry type from it: a
    symlink's data is its target), ``flags`` adds HEAD_FLAGS bits (0x04: encrypted).
    """
    out = bytearray(MARKER + _block(MAIN_HEAD, 0, bytes(6)))  # RESERVED1 u16, RESERVED2 u32
    for name, data in entries:
        is_dir = name.endswith("/")
        raw_name = name.rstrip("/").encode() if is_dir else name.encode()
        head_flags = LONG_BLOCK | (DIRECTORY if is_dir else 0) | (flags or {}).get(name, 0)
        unp_size = (declared or {}).get(name, len(data))
        mode = (modes or {}).get(name, 0o40755 if is_dir else 0o100644)
        fields = struct.pack(
            "<IIBIIBBHI",
            len(data),  # PACK_SIZE
            unp_size,  # UNP_SIZE
            HOST_UNIX,
            zlib.crc32(data),  # FILE_CRC
            DOS_TIME,  # FTIME
            UNP_VER,
            STORED,
            len(raw_name),
            mode,  # ATTR
        )
        out += _block(FILE_HEAD, head_flags, fields + raw_name) + data
    out += _block(END_HEAD, SKIP_IF_UNKNOWN, b"")
    path.write_bytes(bytes(out))
