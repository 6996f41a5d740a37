"""What a download must do: which files to stage, which chunks to fetch, which to copy locally.

Pure functions over manifests: no I/O, no clock. The old version's manifest (if the game is
already downloaded here) turns unchanged files into no-ops and identical chunks into local copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from lanpeer_proto.messages import Manifest, ManifestFile

from lanpeer.errors import LanpeerError

VERSION_INI = "version.ini"


class BadManifestError(LanpeerError):
    code = "bad_manifest"


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """One fixed-size chunk of one file of the new version."""

    path: str
    index: int
    offset: int
    length: int
    digest: bytes
    #: ``hash((path, offset))``, computed once: (path, offset) names a chunk of one manifest,
    #: and building that tuple on every set or dict look-up was the planner's main cost
    #: (bench/swarm_sim.py profile). Not compared: equality stays the five fields'.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.path, self.offset)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class LocalCopy:
    """Where identical bytes already sit on local disk (a file of the old version)."""

    path: str
    offset: int


@dataclass(slots=True)
class DownloadPlan:
    manifest: Manifest
    staged: list[ManifestFile]  # files assembled under .lanpeer.part/
    kept: list[str]  # unchanged files of the old version: nothing to do
    removed: list[str]  # files of the old version the new one does not have
    reusable: dict[bytes, LocalCopy] = field(default_factory=dict)

    @property
    def staged_bytes(self) -> int:
        return sum(f.size for f in self.staged)

    def chunks(self) -> Iterator[ChunkRef]:
        for f in self.staged:
            yield from file_chunks(f)


def chunk_count(f: ManifestFile) -> int:
    return -(-f.size // f.chunk_size)


def file_chunks(f: ManifestFile) -> Iterator[ChunkRef]:
    for i, digest in enumerate(f.chunk_hashes[: chunk_count(f)]):
        offset = i * f.chunk_size
        yield ChunkRef(f.path, i, offset, min(f.chunk_size, f.size - offset), digest)


def check_manifest(manifest: Manifest) -> None:
    """Refuse a manifest whose chunk lists do not match its file sizes, or with duplicate paths."""
    seen: set[str] = set()
    for f in manifest.files:
        n = chunk_count(f)
        if len(f.chunk_hashes) != n and not (f.size == 0 and len(f.chunk_hashes) <= 1):
            raise BadManifestError(
                f"manifest of {manifest.game_id!r} lists {len(f.chunk_hashes)} chunks for "
                f"{f.path!r} ({f.size} bytes, {n} expected); ask the peer to rescan the game"
            )
        if f.path in seen:
            raise BadManifestError(f"manifest of {manifest.game_id!r} lists {f.path!r} twice")
        seen.add(f.path)
    if VERSION_INI not in seen:
        raise BadManifestError(f"manifest of {manifest.game_id!r} has no version.ini")


def make_plan(manifest: Manifest, old: Manifest | None) -> DownloadPlan:
    """Stage every new or changed file; reuse every chunk of the old version with the same hash."""
    check_manifest(manifest)
    old_files = {f.path: f for f in old.files} if old is not None else {}
    staged: list[ManifestFile] = []
    kept: list[str] = []
    for f in manifest.files:
        prev = old_files.get(f.path)
        same = prev is not None and (prev.size, prev.chunk_hashes) == (f.size, f.chunk_hashes)
        if same and f.path != VERSION_INI:
            kept.append(f.path)
        else:
            staged.append(f)
    reusable: dict[bytes, LocalCopy] = {}
    for prev in old_files.values():
        for c in file_chunks(prev):
            reusable.setdefault(c.digest, LocalCopy(c.path, c.offset))
    new_paths = {f.path for f in manifest.files}
    removed = sorted(p for p in old_files if p not in new_paths)
    return DownloadPlan(manifest, staged, kept, removed, reusable)
