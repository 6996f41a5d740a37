"""Delta updates, free-space checks, disk full mid-download and bandwidth caps (SPEC §7)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanpeer.download import DownloadManager, SourceSet
from lanpeer.download.staging import PART_DIR
from lanpeer.ratelimit import TokenBucket
from tests.download.helpers import (
    CHUNK,
    DirSource,
    in_catalog,
    manifest_of,
    open_library,
    random_bytes,
    tree_bytes,
    write_game,
)

GAME = "deltas"


def archives(version: int) -> dict[str, bytes]:
    files = {f"a{i:02d}.eti": random_bytes(4 * CHUNK, 100 + i) for i in range(10)}
    if version == 2:
        changed = bytearray(files["a03.eti"])
        changed[2 * CHUNK + 17] ^= 0x5A  # one byte in the third chunk of one archive
        files["a03.eti"] = bytes(changed)
    return files


@pytest.mark.asyncio
async def test_delta_update_fetches_only_changed_chunks(tmp_path: Path) -> None:
    root = tmp_path / "games"
    old = write_game(root / GAME, {**archives(1), "old-readme.txt": b"v1 only"}, "1.0")
    (old / "local").mkdir()
    (old / "local" / "save.dat").write_bytes(b"mine")
    new_files = {**archives(2), "a10.eti": archives(1)["a01.eti"]}  # a new file, old bytes
    seed = write_game(tmp_path / "seed" / GAME, new_files, "2.0")
    m = manifest_of(seed, GAME)
    src = DirSource("A", seed, m.manifest_hash)
    srcs = SourceSet()
    srcs.add(GAME, m.manifest_hash, src)
    async with open_library(root) as lib, DownloadManager(lib, srcs) as mgr:
        op = mgr.submit_download(GAME, m)
        async with asyncio.timeout(20):
            await op.wait_finished()
        assert op.state == "done", op.error
        assert (await lib.wait_manifest(GAME, for_peer=False)).manifest_hash == m.manifest_hash
    # across the network: the one changed chunk and the new version.ini, nothing else
    assert set(src.served) == {("a03.eti", 2 * CHUNK), ("version.ini", 0)}
    assert sum(src.served.values()) == 2
    counters = op.counters
    assert counters.chunks_copied == 3 + 4  # a03's unchanged chunks + a10 from a01
    assert tree_bytes(root / GAME) == tree_bytes(seed)  # old-readme.txt removed
    assert (old / "local" / "save.dat").read_bytes() == b"mine"


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.process
@pytest.mark.asyncio
async def test_not_enough_space_fails_before_anything(tmp_path: Path) -> None:
    seed = write_game(tmp_path / "seed" / GAME, {"big.eti": random_bytes(40 * CHUNK, 1)})
    m = manifest_of(seed, GAME)
    srcs = SourceSet()
    src = DirSource("A", seed, m.manifest_hash)
    srcs.add(GAME, m.manifest_hash, src)
    with tmpfs(tmp_path / "mnt", "1m") as root:
        async with open_library(root) as lib, DownloadManager(lib, srcs, space_margin=0) as mgr:
            op = mgr.submit_download(GAME, m)
            async with asyncio.timeout(10):
                await op.wait_finished()
        assert op.state == "failed"
        assert op.error_code == "disk_full"
        assert " needed (incl. " in (op.error or "")  # sizes in words, not raw byte counts
        assert " MB needed" in (op.error or "")
        assert sum(src.served.values()) == 0
        assert not (root / GAME).exists()


class FillingSource(DirSource):
    """After its first chunk, something else fills the disk (a real, common LAN-party event)."""

    def __init__(self, *args: object, fill: Path, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.fill = fill

    def mangle(self, data: bytes) -> bytes:
        if not self.fill.exists():
            with contextlib.suppress(OSError), open(self.fill, "wb", buffering=0) as f:
                while True:
                    f.write(bytes(1 << 20))
        return data


@pytest.mark.process
@pytest.mark.asyncio
async def test_disk_full_mid_download_fails_cleanly(tmp_path: Path) -> None:
    files = {"a.eti": random_bytes(8 * CHUNK, 1), "b.eti": random_bytes(8 * CHUNK, 2)}
    seed = write_game(tmp_path / "seed" / GAME, files)
    m = manifest_of(seed, GAME)
    with tmpfs(tmp_path / "mnt", "4m") as root:
        src = FillingSource("A", seed, m.manifest_hash, fill=root / "filler.bin")
        srcs = SourceSet()
        srcs.add(GAME, m.manifest_hash, src)
        async with open_library(root) as lib, DownloadManager(lib, srcs, space_margin=0) as mgr:
            op = mgr.submit_download(GAME, m)
            async with asyncio.timeout(10):
                await op.wait_finished()
            assert op.state == "failed"
            assert op.error_code == "disk_full"
            assert "disk full" in (op.error or "")
            await lib.rescan()
            assert not in_catalog(lib, GAME)
            assert lib.snapshot() == []
        assert not (root / GAME / PART_DIR).exists()
        assert not (root / GAME).exists()
        os.unlink(root / "filler.bin")


@pytest.mark.asyncio
async def test_token_bucket_paces_to_the_rate() -> None:
    bucket = TokenBucket(1 << 20, burst=64 * 1024)
    started = time.monotonic()
    for _ in range(4):
        await bucket.wait_acquire(64 * 1024)
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 1.0  # 256 KiB at 1 MiB/s minus the 64 KiB burst ~ 0.19 s


@pytest.mark.asyncio
async def test_download_cap_slows_the_download(tmp_path: Path) -> None:
    seed = write_game(tmp_path / "seed" / GAME, {"a.eti": random_bytes(16 * CHUNK, 3)})
    m = manifest_of(seed, GAME)
    srcs = SourceSet()
    srcs.add(GAME, m.manifest_hash, DirSource("A", seed, m.manifest_hash))
    started = time.monotonic()
    async with (
        open_library(tmp_path / "games") as lib,
        DownloadManager(lib, srcs, max_download=2 << 20) as mgr,
    ):
        op = mgr.submit_download(GAME, m)
        async with asyncio.timeout(10):
            await op.wait_finished()
    assert op.state == "done", op.error
    assert time.monotonic() - started >= 0.2  # 1 MiB at 2 MiB/s minus a 512 KiB burst: 0.25 s
