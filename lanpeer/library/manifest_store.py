"""``LibraryManifests``: the library's side of the hashing seam (``hashing.ManifestStore``).

Owns the few operations ``GameHasher`` may ask of the library: read a record, list the games
needing a hash, rebuild a manifest from the index in the ordered scan thread, read cached chunk
hashes while hashing, and store a result under the library's write lock, only if the game is
still the one hashed. Never hashes and never holds a lock beyond one store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from lanpeer_proto.messages import Manifest

from lanpeer.library import scanner
from lanpeer.library.index import GameRecord, LibraryIndex
from lanpeer.library.state import LibraryState

#: Runs a blocking function in the library's one ordered scan thread.
ScanThread = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class LibraryManifests:
    state: LibraryState
    index: LibraryIndex
    in_scan_thread: ScanThread  # ordered DB writes share the scan thread
    write_lock: asyncio.Lock  # the library's: one writer of records at a time
    hashed: Callable[[], None]  # a manifest was stored: republish the library soon

    def record(self, game_id: str) -> GameRecord | None:
        return self.state.records.get(game_id)

    def wanted(self, game_id: str, *, for_peer: bool) -> GameRecord:
        """The record to hash for a peer (served rules) or for local use; else ServeRefused."""
        return self.state.served(game_id) if for_peer else self.state.downloaded(game_id)

    def needs_hash(self) -> list[str]:
        return self.state.needs_hash()

    async def load_manifest(self, record: GameRecord) -> Manifest | None:
        """``record``'s manifest rebuilt from the index (scan thread); None if it is stale."""
        manifest: Manifest | None = await self.in_scan_thread(
            scanner.load_manifest, record, self.index
        )
        return manifest

    def hash_files(
        self, record: GameRecord, progress: scanner.HashProgress, chunk_size: int
    ) -> scanner.HashResult:
        """Hash the game's files, reusing the index's hashes of unchanged ones (blocking)."""
        return scanner.hash_game(record, self.index, progress, chunk_size)

    async def store_manifest(self, hashed: GameRecord, result: scanner.HashResult) -> None:
        """Store ``result`` as the manifest of ``hashed``'s game, or raise HashCancelled when
        the game or its files changed while they were hashed."""
        game_id = hashed.game_id
        async with self.write_lock:
            current = self.state.records.get(game_id)
            if current is None or (current.root, current.version) != (hashed.root, hashed.version):
                raise scanner.HashCancelled(f"{game_id} changed while it was hashed")
            record = replace(current, manifest_hash=result.manifest.manifest_hash, size=result.size)
            if not await self.in_scan_thread(scanner.store_if_current, record, result, self.index):
                raise scanner.HashCancelled(f"{game_id}: files changed while they were hashed")
            self.state.records[game_id] = record
        self.hashed()
