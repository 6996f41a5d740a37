"""Hostile archives, built here: every one is refused, staging is removed and nothing outside
staging changes. Bombs stop at the byte budget; a full disk gives DiskFullError."""

from __future__ import annotations

import contextlib
import io
import stat
import struct
import subprocess
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import libarchive
import pytest
from gamekit import content, make_game, tree_digest, write_tar, write_zip

from lanpeer.errors import (
    ArchiveBombError,
    BadArchiveError,
    DiskFullError,
    EncryptedArchiveError,
    UnsafeArchiveError,
)
from lanpeer.install import ExtractLimits, extract_archive, install_game

MiB = 1024 * 1024


def _raw_zip(names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(zipfile.ZipInfo(name), b"payload")
    return buffer.getvalue()


def _zip_names(*names: str) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(_raw_zip(list(names)))


def _zip_with_nul(path: Path) -> None:
    path.write_bytes(_raw_zip(["evil.dllXtxt"]).replace(b"evil.dllXtxt", b"evil.dll\x00txt"))


def _tar_member(kind: bytes, name: str = "x", linkname: str = "") -> Callable[[Path], None]:
    def build(path: Path) -> None:
        with tarfile.open(path, "w") as tar:
            tar.addfile(tarfile.TarInfo("ok.txt"), io.BytesIO(b""))
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, linkname
            tar.addfile(info)

    return build


def _tar_files(*names: str) -> Callable[[Path], None]:
    return lambda path: write_tar(path, {name: b"data" for name in names}, mode="w")


def _tar_duplicate(path: Path) -> None:
    with tarfile.open(path, "w") as tar:
        for data in (b"first", b"second"):
            info = tarfile.TarInfo("same.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _encrypted_with_libarchive(path: Path) -> None:
    options = "encryption=zipcrypt"
    with libarchive.file_writer(str(path), "zip", options=options, passphrase="pw") as writer:
        writer.add_file_from_memory("secret.txt", 6, b"secret")


def _encrypted_flag_by_hand(path: Path) -> None:
    """A plain zip with general-purpose bit 0 (encrypted) set in both headers."""
    raw = bytearray(_raw_zip(["secret.txt"]))
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    raw[local + 6] |= 1
    raw[central + 8] |= 1
    path.write_bytes(bytes(raw))


HOSTILE: dict[str, Callable[[Path], None]] = {
    "dotdot": _zip_names("ok.txt", "../escape.txt"),
    "inner-dotdot": _zip_names("a/../../escape.txt"),
    "absolute": _zip_names("/tmp/lanpeer-absolute-escape.txt"),
    "drive-letter": _zip_names("C:/windows/evil.dll"),
    "backslash": _zip_names("..\\escape.txt"),
    "control-char": _zip_names("bad\x01name.txt"),
    "newline": _zip_names("bad\nname.txt"),
    "nul-byte": _zip_with_nul,
    "empty-component": _zip_names("a//b.txt"),
    "dot-component": _zip_names("./a.txt"),
    "windows-reserved": _zip_names("CON.txt"),
    "trailing-dot": _zip_names("readme."),
    "too-deep": _zip_names("/".join(["d"] * 40) + "/f"),
    "symlink": _tar_member(tarfile.SYMTYPE, "link", "/etc/passwd"),
    "symlink-inside": _tar_member(tarfile.SYMTYPE, "link", "ok.txt"),
    "hardlink": _tar_member(tarfile.LNKTYPE, "hard", "ok.txt"),
    "char-device": _tar_member(tarfile.CHRTYPE, "null"),
    "block-device": _tar_member(tarfile.BLKTYPE, "sda"),
    "fifo": _tar_member(tarfile.FIFOTYPE, "pipe"),
    "duplicate": _tar_duplicate,
    "case-collision": _tar_files("Readme.txt", "README.TXT"),
    "case-collision-dirs": _tar_files("Data/a.txt", "data/b.txt"),
    "file-and-dir": _tar_files("x", "x/y"),
    "marker-name": _tar_files(".lanpeer_owned"),
    "encrypted-libarchive": _encrypted_with_libarchive,
    "encrypted-flag": _encrypted_flag_by_hand,
}


@pytest.fixture
def game(tmp_path: Path) -> Path:
    return make_game(tmp_path / "root" / "quake", "1.0")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_and_nothing_changes(
    case: str, game: Path, tmp_path: Path
) -> None:
    HOSTILE[case](game / "data2.eti")
    before = tree_digest(tmp_path)
    with pytest.raises(UnsafeArchiveError) as refused:
        install_game(game)
    assert tree_digest(tmp_path) == before, "something outside staging changed"
    assert not Path("/tmp/lanpeer-absolute-escape.txt").exists()
    assert str(refused.value)
    if case.startswith("encrypted"):
        assert isinstance(refused.value, EncryptedArchiveError)


def test_setuid_and_world_write_bits_are_dropped(tmp_path: Path) -> None:
    archive = tmp_path / "modes.tar"
    with tarfile.open(archive, "w") as tar:
        for name, mode in (("suid", 0o4777), ("sgid", 0o2775), ("dir/", 0o1777)):
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode = mode
            info.type = tarfile.DIRTYPE if name.endswith("/") else tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(b""))
    (tmp_path / "out").mkdir()
    extract_archive(archive, tmp_path / "out")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir()}
    assert modes == {"suid": 0o755, "sgid": 0o755, "dir": 0o755}


def test_formats_are_detected_by_content_not_name(tmp_path: Path) -> None:
    files = {"a/b.txt": b"hello", "c.bin": content("c", 5000)}
    builders: dict[str, Callable[[Path], None]] = {
        "zip": lambda p: write_zip(p, files),
        "tar.xz": lambda p: write_tar(p, files, mode="w:xz"),
        "tar.bz2": lambda p: write_tar(p, files, mode="w:bz2"),
    }
    builders["7z"] = _seven_zip(files)
    for name, build in builders.items():
        build(tmp_path / f"{name}.eti")
        out = tmp_path / f"out-{name}"
        out.mkdir()
        extract_archive(tmp_path / f"{name}.eti", out)
        assert (out / "a" / "b.txt").read_bytes() == b"hello", name


def _seven_zip(files: dict[str, bytes]) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        with libarchive.file_writer(str(path), "7zip") as writer:
            for name, data in files.items():
                writer.add_file_from_memory(name, len(data), data)

    return build


def test_not_an_archive_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "junk.eti").write_bytes(b"this is not an archive" * 100)
    (tmp_path / "out").mkdir()
    with pytest.raises(BadArchiveError, match=r"junk\.eti could not be read"):
        extract_archive(tmp_path / "junk.eti", tmp_path / "out")


def test_mtree_is_not_a_format_we_read(tmp_path: Path) -> None:
    """mtree entries can name files of this host; libarchive's 'all' would read them."""
    (tmp_path / "spec.eti").write_text("#mtree\npasswd type=file contents=/etc/passwd\n")
    (tmp_path / "out").mkdir()
    with pytest.raises(BadArchiveError):
        extract_archive(tmp_path / "spec.eti", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def _gzip_member(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def _lying_bomb(path: Path, declared: int, zero_members: int) -> None:
    """A tar.gz declaring ``declared`` bytes, made of repeated gzip members of 64 MiB zeros."""
    header = tarfile.TarInfo("huge.bin")
    header.size = declared
    zeros = _gzip_member(bytes(64 * MiB))
    with path.open("wb") as out:
        out.write(_gzip_member(header.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(zero_members):
            out.write(zeros)


def test_ten_gigabytes_declared_in_ten_megabytes_stops_at_the_ratio_cap(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.eti"
    _lying_bomb(bomb, declared=10 * 1024 * MiB, zero_members=160)
    assert bomb.stat().st_size < 11 * MiB
    out = tmp_path / "out"
    out.mkdir()
    # the default cap (100x) would write ~1 GB before stopping; 20x keeps the test at ~200 MB
    limits = ExtractLimits(durable=False, max_ratio=20.0)
    with pytest.raises(ArchiveBombError, match="decompression bomb"):
        extract_archive(bomb, out, limits)
    written = (out / "huge.bin").stat().st_size
    assert written <= limits.max_ratio * bomb.stat().st_size + limits.ratio_slack + MiB
    (out / "huge.bin").unlink()


def test_declared_size_over_the_budget_is_refused_before_writing(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.eti"
    _lying_bomb(bomb, declared=10 * 1024 * MiB, zero_members=1)
    (tmp_path / "out").mkdir()
    with pytest.raises(ArchiveBombError, match="declares"):
        extract_archive(bomb, tmp_path / "out", ExtractLimits(max_bytes=1024 * MiB))
    assert list((tmp_path / "out").iterdir()) == []


def test_entry_count_cap(tmp_path: Path) -> None:
    write_tar(tmp_path / "many.tar", {f"f{i}": b"" for i in range(20)}, mode="w")
    (tmp_path / "out").mkdir()
    with pytest.raises(ArchiveBombError, match="more than 10 entries"):
        extract_archive(tmp_path / "many.tar", tmp_path / "out", ExtractLimits(max_entries=10))


def test_zip_header_lying_about_size_counts_actual_bytes(tmp_path: Path) -> None:
    """Local and central headers claim 100 bytes; the deflate stream holds 8 MiB."""
    raw = bytearray()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("liar.bin", bytes(8 * MiB))
    raw = bytearray(buffer.getvalue())
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, 100)
    struct.pack_into("<I", raw, central + 24, 100)
    (tmp_path / "liar.eti").write_bytes(bytes(raw))
    out = tmp_path / "out"
    out.mkdir()
    limits = ExtractLimits(max_bytes=2 * MiB, ratio_slack=0, max_ratio=1e9, max_entry_ratio=1e9)
    try:
        stats = extract_archive(tmp_path / "liar.eti", out, limits)
    except (ArchiveBombError, BadArchiveError):
        return
    assert stats.bytes_written == (out / "liar.bin").stat().st_size <= 2 * MiB


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 2 MiB tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.process
def test_free_space_is_checked_before_extracting(small_tmpfs: Path, tmp_path: Path) -> None:
    write_tar(tmp_path / "a.eti", {"big.bin": content("big", 100_000)})
    with pytest.raises(DiskFullError, match="not enough free space"):
        extract_archive(tmp_path / "a.eti", small_tmpfs)
    assert list(small_tmpfs.iterdir()) == []


@pytest.mark.process
def test_budget_from_free_space_gives_disk_full(small_tmpfs: Path, tmp_path: Path) -> None:
    write_tar(tmp_path / "a.eti", {"big.bin": content("big", 3 * MiB)})
    with pytest.raises(DiskFullError, match="free space"):
        extract_archive(tmp_path / "a.eti", small_tmpfs, ExtractLimits(free_margin=0))


@pytest.mark.process
def test_real_enospc_is_disk_full_and_install_rolls_back(small_tmpfs: Path) -> None:
    game = small_tmpfs / "quake"
    game.mkdir()
    write_tar(game / "data.eti", {"big.bin": content("big", 1200 * 1024)})
    (game / "version.ini").write_text("version=1\n")
    before = tree_digest(game)
    # a negative margin pretends there is more space, so the write itself hits ENOSPC
    with pytest.raises(DiskFullError):
        install_game(game, ExtractLimits(free_margin=-64 * MiB))
    assert tree_digest(game) == before


@pytest.mark.parametrize(
    ("first", "second"), [("Maps/a.map", "maps/b.map"), ("bin/game.exe", "bin/game.exe")]
)
def test_collisions_across_archives_of_one_game_are_refused(
    first: str, second: str, tmp_path: Path
) -> None:
    game = tmp_path / "quake"
    game.mkdir()
    write_tar(game / "a.eti", {first: b"one"})
    write_zip(game / "b.eti", {second: b"two"})
    (game / "version.ini").write_text("version=1\n")
    before = tree_digest(game)
    with pytest.raises(UnsafeArchiveError):
        install_game(game)
    assert tree_digest(game) == before


def _bad_crc_zip(path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.bin", content("crc", 50_000))
    raw = bytearray(buffer.getvalue())
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    raw[local + 14] ^= 0xFF
    raw[central + 16] ^= 0xFF
    path.write_bytes(bytes(raw))


def _truncated_tar_gz(path: Path) -> None:
    write_tar(path, {"big.bin": content("trunc", 200_000)})
    path.write_bytes(path.read_bytes()[:-30_000])


@pytest.mark.parametrize("build", [_bad_crc_zip, _truncated_tar_gz], ids=["bad-crc", "truncated"])
def test_corrupt_archive_rolls_the_install_back(
    build: Callable[[Path], None], game: Path, tmp_path: Path
) -> None:
    build(game / "data2.eti")
    before = tree_digest(tmp_path)
    with pytest.raises(BadArchiveError, match="could not be read"):
        install_game(game)
    assert tree_digest(tmp_path) == before


def _overlapping_zip(path: Path, copies: int) -> None:
    """Many central-directory entries pointing at one local entry (bamsoftware-style bomb)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a", bytes(8 * MiB))
    raw = buffer.getvalue()
    central_at = raw.find(b"PK\x01\x02")
    end_at = raw.find(b"PK\x05\x06")
    record = raw[central_at:end_at]
    name_len = struct.unpack_from("<H", record, 28)[0]
    assert name_len == 1
    records = b"".join(
        record[:28] + struct.pack("<H", 4) + record[30:46] + f"b{i:03d}".encode()
        for i in range(copies)
    )
    end = bytearray(raw[end_at:])
    struct.pack_into("<HHII", end, 8, copies, copies, len(records), central_at)
    path.write_bytes(raw[:central_at] + records + bytes(end))


def test_overlapping_entries_never_expand_past_the_caps(tmp_path: Path) -> None:
    """200 names over one 8 MiB entry would be 1.6 GB; libarchive reads the shared local entry
    once (seen here), and the ratio cap would stop it anyway."""
    bomb = tmp_path / "overlap.eti"
    _overlapping_zip(bomb, copies=200)
    (tmp_path / "out").mkdir()
    with contextlib.suppress(ArchiveBombError, BadArchiveError):
        extract_archive(bomb, tmp_path / "out", ExtractLimits(durable=False))
    written = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*"))
    assert written <= 100 * bomb.stat().st_size + 16 * MiB
