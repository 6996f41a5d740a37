"""Test material for downloads: real game dirs, real manifests, in-process chunk sources.

Sources read real files with ``os.pread``; the fault doubles (corrupt, dying, slow) inject what a
real peer cannot be made to do on demand. ``DirLibrary`` stands in for GameLibrary until it lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import blake3
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import Manifest, ManifestFile

from lanpeer.errors import LanpeerError

CHUNK = 64 * 1024
SKIP = {"local", ".lanpeer.part", ".lanpeer.json", ".version.ini.tmp", ".sync",
        ".softlan_game_installed", ".local.installing", ".local.backup"}


def write_game(game_dir: Path, files: dict[str, bytes], version: str = "1.0") -> Path:
    game_dir.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (game_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (game_dir / rel).write_bytes(data)
    (game_dir / "version.ini").write_text(f"[game]\nversion={version}\n")
    return game_dir


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def served_paths(game_dir: Path) -> Iterator[str]:
    for p in sorted(game_dir.rglob("*")):
        rel = p.relative_to(game_dir)
        if rel.parts[0] in SKIP or not p.is_file() or p.is_symlink():
            continue
        yield rel.as_posix()


def manifest_of(game_dir: Path, game_id: str, chunk_size: int = CHUNK) -> Manifest:
    files = []
    for rel in served_paths(game_dir):
        data = (game_dir / rel).read_bytes()
        hashes = [
            blake3.blake3(data[o : o + chunk_size]).digest() for o in range(0, len(data), chunk_size)
        ]
        files.append(ManifestFile(path=rel, size=len(data), chunk_size=chunk_size,
                                  chunk_hashes=hashes))
    h = blake3.blake3()
    for f in files:
        h.update(f"{f.path}\0{f.size}\0{f.chunk_size}\0".encode())
        for d in f.chunk_hashes:
            h.update(d)
    version = (game_dir / "version.ini").read_text().split("version=")[1].split()[0]
    return Manifest(game_id=game_id, version=version, manifest_hash=h.digest(), files=files)


def tree_bytes(game_dir: Path) -> dict[str, bytes]:
    return {rel: (game_dir / rel).read_bytes() for rel in served_paths(game_dir)}


class Refused(LanpeerError):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class PeerGone(ConnectionError):
    pass


class DirSource:
    """Serves chunks of a real game dir, like a peer's library would (real reads, off the loop)."""

    def __init__(self, peer_id: str, game_dir: Path, manifest_hash: bytes) -> None:
        self.peer_id = peer_id
        self.game_dir = game_dir
        self.manifest_hash = manifest_hash
        self.served: Counter[tuple[str, int]] = Counter()
        self.bytes_served = 0
        self.alive = True

    async def fetch_chunk(
        self, game_id: str, manifest_hash: bytes, path: str, offset: int, length: int
    ) -> bytes:
        if not self.alive:
            raise PeerGone(f"peer {self.peer_id} is down")
        if manifest_hash != self.manifest_hash:
            raise Refused(ErrorCode.STALE_MANIFEST, "that version is no longer served")
        data = await asyncio.to_thread(self._read, path, offset, length)
        data = self.mangle(data)
        self.served[(path, offset)] += 1
        self.bytes_served += len(data)
        return data

    def _read(self, path: str, offset: int, length: int) -> bytes:
        fd = os.open(self.game_dir / path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def mangle(self, data: bytes) -> bytes:
        return data


class CorruptSource(DirSource):
    def mangle(self, data: bytes) -> bytes:
        return bytes([data[0] ^ 0xFF]) + data[1:] if data else data


class DyingSource(DirSource):
    """Dies (every later request fails) after serving ``serve`` chunks."""

    def __init__(self, *args: object, serve: int, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.serve = serve

    def mangle(self, data: bytes) -> bytes:
        if sum(self.served.values()) + 1 >= self.serve:
            self.alive = False
        return data


class SlowSource(DirSource):
    def __init__(self, *args: object, delay: float, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.delay = delay

    async def fetch_chunk(
        self, game_id: str, manifest_hash: bytes, path: str, offset: int, length: int
    ) -> bytes:
        await asyncio.sleep(self.delay)
        return await super().fetch_chunk(game_id, manifest_hash, path, offset, length)


class DirLibrary:
    """The few GameLibrary calls downloads make, over real dirs (stand-in until library lands)."""

    def __init__(self, root: Path, chunk_size: int = CHUNK) -> None:
        self.root = root
        self.chunk_size = chunk_size
        self.catalog: dict[str, str] = {}
        self.busy: set[str] = set()
        self.calls: list[str] = []

    def game_dir(self, game_id: str) -> Path | None:
        d = self.root / game_id
        return d if d.is_dir() else None

    def game_dir_for_new(self, game_id: str) -> Path:
        return self.root / game_id

    async def wait_manifest(self, game_id: str) -> Manifest:
        return await asyncio.to_thread(manifest_of, self.root / game_id, game_id, self.chunk_size)

    @contextlib.contextmanager
    def operation(self, game_id: str) -> Iterator[None]:
        self.busy.add(game_id)
        self.calls.append(f"busy {game_id}")
        try:
            yield
        finally:
            self.busy.discard(game_id)
            self.calls.append(f"idle {game_id}")

    def add_catalog_entry(self, id: str, name: str, **kw: object) -> None:  # noqa: A002
        self.catalog[id] = name
        self.calls.append(f"catalog {id}")

    async def rescan(self, game_id: str | None = None) -> None:
        self.calls.append(f"rescan {game_id}")
