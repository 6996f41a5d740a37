"""The swarm seam of a download (SPEC §7a): what ``GameDownload`` needs to be a partial source
and to use other downloaders as sources. net implements it (``lanpeer.net.swarm``); without it a
download uses full sources only.

Owns the protocols and the global chunk numbering both ends of the wire agree on (files in
manifest order, chunks in file order). Never does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lanpeer_proto.messages import Manifest

from lanpeer.download.plan import ChunkRef, file_chunks
from lanpeer.download.sources import SourceDirectory


def numbered_chunks(manifest: Manifest) -> list[ChunkRef]:
    """Every chunk of the manifest; its position is its number in have-sets."""
    return [c for f in manifest.files for c in file_chunks(f)]


@dataclass(frozen=True, slots=True)
class LiveFiles:
    """Files a delta update leaves as they are in the game dir (``DownloadPlan.kept``): the
    installed version ``manifest_hash`` has them with the same size and chunk hashes, so its
    chunks of them are chunks of the new version too, read where the library serves them."""

    manifest_hash: bytes  # the installed (old) version, as the library serves it
    paths: frozenset[str]


class SwarmMember(Protocol):
    """One download while it takes part in the swarm."""

    @property
    def directory(self) -> SourceDirectory:
        """Full sources and the partial sources holding part of this version."""
        ...

    def holds(self, chunk: ChunkRef) -> None:
        """``chunk`` is verified on disk under the part dir: serve it and announce it."""
        ...

    def fetching(self, chunks: frozenset[ChunkRef]) -> None:
        """The chunks with requests out now (announced as a hint, never served)."""
        ...


class Swarm(Protocol):
    def join(
        self,
        manifest: Manifest,
        part_dir: Path,
        verified: Iterable[ChunkRef],
        full_sources: SourceDirectory,
        live: LiveFiles | None = None,
    ) -> AbstractAsyncContextManager[SwarmMember]:
        """Take part while the context is open; on exit the host stops serving at once.
        The member's directory lists ``full_sources`` and the partial sources it found.
        ``live``: unchanged files of a delta update, held (and served) from the start."""
        ...
