"""Test material for downloads: real game dirs, real manifests, in-process chunk sources.

Sources read real files with ``os.pread``; the fault doubles (corrupt, dying, slow) inject what a
real peer cannot be made to do on demand. The downloading side uses a real GameLibrary.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import blake3
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import Manifest, ManifestFile
from lanpeer_proto.paths import RESERVED_NAMES

from lanpeer.errors import LanpeerError
from lanpeer.library import GameLibrary
from lanpeer.library.manifest import manifest_hash_of

CHUNK = 64 * 1024
SKIP = RESERVED_NAMES  # never served: the one list of SPEC §3


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
    for rel in sorted(served_paths(game_dir)):
        data = (game_dir / rel).read_bytes()
        offsets = range(0, len(data), chunk_size)
        hashes = [blake3.blake3(data[o : o + chunk_size]).digest() for o in offsets]
        files.append(
            ManifestFile(path=rel, size=len(data), chunk_size=chunk_size, chunk_hashes=hashes)
        )
    version = (game_dir / "version.ini").read_text().split("version=")[1].split()[0]
    draft = Manifest(game_id=game_id, version=version, manifest_hash=bytes(32), files=files)
    return draft.model_copy(update={"manifest_hash": manifest_hash_of(draft)})


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


class GatedSource(DirSource):
    """Serves ``serve`` chunks, then holds every request until ``gate`` is set (a paused peer)."""

    def __init__(self, *args: object, serve: int, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.serve = serve
        self.gate = asyncio.Event()
        self.holding = asyncio.Event()
        self.requested = 0

    async def fetch_chunk(
        self, game_id: str, manifest_hash: bytes, path: str, offset: int, length: int
    ) -> bytes:
        self.requested += 1
        if self.requested > self.serve and not self.gate.is_set():
            self.holding.set()
            await self.gate.wait()
        return await super().fetch_chunk(game_id, manifest_hash, path, offset, length)


async def wait_for(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    """Poll a cheap in-memory predicate until true (bounded); for state with no event to await."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 - several independent conditions
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def open_library(root: Path) -> AsyncIterator[GameLibrary]:
    """A real GameLibrary (SQLite index, catalog) over ``root``; no watcher, hashing on demand."""
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    lib = GameLibrary([root], root.parent / (root.name + "-state"), watch=False,
                      background_hashing=False)  # fmt: skip
    async with lib:
        yield lib


def in_catalog(lib: GameLibrary, game_id: str) -> bool:
    return any(g.id == game_id and g.in_catalog for g in lib.local_games())


def open_part_fds() -> list[str]:
    """Paths under any .lanpeer.part/ this process still holds open (leaked staging fds)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if "/.lanpeer.part/" in target:
                found.append(target)
    return found
