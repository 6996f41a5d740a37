"""The computed ZIP layout, read back by Python's zipfile: every byte of it comes from pieces()."""

from __future__ import annotations

import io
import zipfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanpeer.share.zipmap import FileBytes, HeaderBytes, ZipEntry, ZipLayout

GiB = 1 << 30


def _assemble(
    layout: ZipLayout, contents: list[bytes], start: int = 0, end: int | None = None
) -> bytes:
    out = bytearray()
    for piece in layout.pieces(start, layout.size if end is None else end):
        if isinstance(piece, HeaderBytes):
            out += piece.data
        else:
            out += contents[piece.index][piece.offset : piece.offset + piece.length]
    return bytes(out)


def _layout(files: dict[str, bytes]) -> tuple[ZipLayout, list[bytes]]:
    contents = list(files.values())
    entries = [ZipEntry(name, len(data), zlib.crc32(data)) for name, data in files.items()]
    return ZipLayout(entries), contents


def test_small_archive_reads_back_with_zipfile() -> None:
    files = {"game/a.bin": b"alpha" * 1000, "game/empty": b"", "game/sub/ünï.txt": b"x"}
    layout, contents = _layout(files)
    data = _assemble(layout, contents)
    assert len(data) == layout.size
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None  # every CRC checked
        assert {i.filename: archive.read(i) for i in archive.infolist()} == files
        assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=6),
    cut=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_any_range_is_the_slice_of_the_whole(sizes: list[int], cut: tuple[float, float]) -> None:
    files = {f"g/f{i}": bytes([i]) * size for i, size in enumerate(sizes)}
    layout, contents = _layout(files)
    whole = _assemble(layout, contents)
    a, b = sorted(int(c * layout.size) for c in cut)
    assert _assemble(layout, contents, a, b) == whole[a:b]


def test_same_entries_give_the_same_bytes() -> None:
    files = {"g/a": b"1" * 10, "g/b": b"2" * 20}
    first, contents = _layout(files)
    second, _ = _layout(files)
    assert _assemble(first, contents) == _assemble(second, contents)


def test_range_outside_the_archive_is_refused() -> None:
    layout, _ = _layout({"g/a": b"1"})
    with pytest.raises(ValueError, match="outside"):
        list(layout.pieces(0, layout.size + 1))


class _SparseArchive(io.RawIOBase):
    """A seekable view of a layout whose file contents are all zero bytes (never materialised)."""

    def __init__(self, layout: ZipLayout) -> None:
        self.layout, self.position = layout, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.layout.size}[whence]
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        end = min(self.layout.size, self.position + len(buffer))
        out = bytearray()
        for piece in self.layout.pieces(self.position, end):
            out += piece.data if isinstance(piece, HeaderBytes) else bytes(piece.length)
        buffer[: len(out)] = out
        self.position = end
        return len(out)


def test_zip64_past_4_gib_reads_back() -> None:
    big = 5 * GiB
    entries = [
        ZipEntry("g/big.bin", big, 0x12345678),  # CRC not checked: only the layout is
        ZipEntry("g/after.txt", 0, 0),
        ZipEntry("g/last.bin", 3, zlib.crc32(bytes(3))),
    ]
    layout = ZipLayout(entries)
    assert layout.size > big
    raw = io.BufferedReader(_SparseArchive(layout))
    with zipfile.ZipFile(raw) as archive:
        infos = archive.infolist()
        assert [(i.filename, i.file_size) for i in infos] == [(e.name, e.size) for e in entries]
        assert infos[2].header_offset > 0xFFFFFFFF  # its offset needed the ZIP64 extra
        assert archive.read("g/last.bin") == bytes(3)  # found through a ZIP64 offset
    files = [p for p in layout.pieces(0, layout.size) if isinstance(p, FileBytes)]
    assert [(p.index, p.length) for p in files] == [(0, big), (2, 3)]


def test_more_than_65535_entries_use_zip64_counts() -> None:
    entries = [ZipEntry(f"g/{i}", 0, 0) for i in range(70_000)]
    layout = ZipLayout(entries)
    with zipfile.ZipFile(io.BytesIO(_assemble(layout, [b""] * len(entries)))) as archive:
        assert len(archive.infolist()) == 70_000


@pytest.mark.process
def test_the_layout_and_range_modules_are_sans_io() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, lanpeer.share.zipmap, lanpeer.share.ranges; "
        "print(sorted({'asyncio', 'socket', 'aiohttp', 'lanpeer.library'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, timeout=60, check=True
    )
    assert done.stdout.strip() == b"[]"
