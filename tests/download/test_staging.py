"""Staged files are written back as a download goes, not all at the final fsync.

Residency is read from the kernel with util-linux ``fincore`` (pages of the file in the page
cache), on whatever filesystem holds the test's temp dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import blake3
import pytest
from lanpeer_proto.messages import Manifest, ManifestFile

from lanpeer.download.plan import ChunkRef
from lanpeer.download.staging import PartDir

CHUNK = 1 << 20
FILE_SIZE = 16 * CHUNK


def _resident_bytes(path: Path) -> int:
    out = subprocess.run(
        ["fincore", "--json", "--bytes", "--output", "RES", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(json.loads(out)["fincore"][0]["res"])


def _manifest(data: bytes) -> Manifest:
    hashes = [blake3.blake3(data[i : i + CHUNK]).digest() for i in range(0, len(data), CHUNK)]
    file = ManifestFile(path="data.bin", size=len(data), chunk_size=CHUNK, chunk_hashes=hashes)
    return Manifest(game_id="stage-test", version="1.0", manifest_hash=b"\x07" * 32, files=[file])


@pytest.mark.process
@pytest.mark.skipif(shutil.which("fincore") is None, reason="util-linux fincore not installed")
@pytest.mark.parametrize("flush_every", [4 * CHUNK, FILE_SIZE * 2])
def test_written_bytes_leave_the_page_cache_every_flush(tmp_path: Path, flush_every: int) -> None:
    data = os.urandom(FILE_SIZE)
    manifest = _manifest(data)
    part = PartDir(tmp_path / "game", flush_every=flush_every)
    part.load(manifest, list(manifest.files))
    for index in range(FILE_SIZE // CHUNK):
        offset = index * CHUNK
        ref = ChunkRef("data.bin", index, offset, CHUNK, manifest.files[0].chunk_hashes[index])
        assert part.write(ref, data[offset : offset + CHUNK])
    staged = part.dir / "data.bin"
    resident = _resident_bytes(staged)
    part.close()
    if flush_every < FILE_SIZE:
        # Every full 4 MiB batch was flushed and dropped; nothing after the last flush is left.
        assert resident == 0, f"{resident} bytes still cached after the last flush"
    else:
        # No flush yet: the kernel still caches what was written (the control for the above).
        assert resident > FILE_SIZE // 2
    assert staged.read_bytes() == data
