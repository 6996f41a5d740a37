"""Manifests: chunk hashes of every served file and the hash that names the exact content.

Owns ``CHUNK_SIZE``, file hashing (BLAKE3 per fixed-size chunk; blake3 releases the GIL, so it
runs in worker threads) and the canonical byte form. Never runs on the event loop and never
trusts a file that changed while it was read: such a file raises ``FileChangedError``.

Canonical form: ``lanpeer_proto.codec.encode`` of the ``Manifest`` message with files sorted by
path and ``manifest_hash`` set to 32 zero bytes; ``manifest_hash`` is the BLAKE3 of those bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import blake3
from lanpeer_proto.codec import encode
from lanpeer_proto.messages import Manifest, ManifestFile

from lanpeer.library.disk import FileStat, open_relative

#: 4 MiB: blake3 runs at ~4 GiB/s per core on pieces this size (research/perf-baseline.md §6),
#: and a 150 GB game stays at ~38,000 chunks (a 1.3 MB manifest).
CHUNK_SIZE = 4 << 20
ZERO_HASH = bytes(32)


class FileChangedError(OSError):
    """A file's size or mtime changed while it was hashed; hash it again later."""


@dataclass(frozen=True)
class FileHashes:
    """Chunk hashes of one file, valid for exactly this (size, mtime_ns, inode)."""

    stat: FileStat
    chunk_size: int
    chunk_hashes: tuple[bytes, ...]
    #: The whole file's CRC-32 (ZIP entries of the HTTP share); None until first needed.
    crc32: int | None = None

    def matches(self, other: FileStat) -> bool:
        return (self.stat.size, self.stat.mtime_ns, self.stat.inode) == (
            other.size,
            other.mtime_ns,
            other.inode,
        )


def hash_file(game_dir: Path, file: FileStat, on_bytes: Callable[[int], None]) -> FileHashes:
    """Hash ``file`` chunk by chunk; ``on_bytes(n)`` reports progress after each chunk."""
    fd = open_relative(game_dir, file.path)
    try:
        _check_unchanged(fd, file)
        hashes = []
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        offset = 0
        while offset < file.size:
            length = min(CHUNK_SIZE, file.size - offset)
            got = os.preadv(fd, [view[:length]], offset)
            if got != length:
                raise FileChangedError(f"{file.path}: shrank while hashing")
            hashes.append(blake3.blake3(view[:length]).digest())
            offset += length
            on_bytes(length)
        _check_unchanged(fd, file)
    finally:
        os.close(fd)
    return FileHashes(file, CHUNK_SIZE, tuple(hashes))


def _check_unchanged(fd: int, file: FileStat) -> None:
    st = os.fstat(fd)
    if (st.st_size, st.st_mtime_ns, st.st_ino) != (file.size, file.mtime_ns, file.inode):
        raise FileChangedError(f"{file.path}: changed while hashing")


def build_manifest(game_id: str, version: str, files: Iterable[FileHashes]) -> Manifest:
    """The manifest with its ``manifest_hash`` filled in."""
    entries = [
        ManifestFile(
            path=f.stat.path,
            size=f.stat.size,
            chunk_size=f.chunk_size,
            chunk_hashes=list(f.chunk_hashes),
        )
        for f in sorted(files, key=lambda f: f.stat.path)
    ]
    draft = Manifest(game_id=game_id, version=version, manifest_hash=ZERO_HASH, files=entries)
    return draft.model_copy(update={"manifest_hash": manifest_hash_of(draft)})


def manifest_hash_of(manifest: Manifest) -> bytes:
    """BLAKE3 of the canonical encoding (the manifest with a zeroed ``manifest_hash``)."""
    canonical = manifest.model_copy(update={"manifest_hash": ZERO_HASH})
    return blake3.blake3(encode(canonical)).digest()


def verify_manifest(manifest: Manifest) -> bool:
    """True if ``manifest.manifest_hash`` names exactly this content."""
    return manifest_hash_of(manifest) == manifest.manifest_hash
