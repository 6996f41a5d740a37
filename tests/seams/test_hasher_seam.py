"""``GameHasher`` reaches the library through one narrow seam (``ManifestStore``): driven here
with a recorder store, in milliseconds, asserting the exact ordered calls."""

from __future__ import annotations

import asyncio
import inspect
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import Manifest

from lanpeer.library import scanner
from lanpeer.library.errors import ServeRefused
from lanpeer.library.hashing import HASH_ATTEMPTS, GameHasher
from lanpeer.library.index import GameRecord, LibraryIndex
from lanpeer.library.state import LibraryState
from tests.seams.recorders import manifest

GAME = "space-race"


def record(manifest_hash: bytes | None = None) -> GameRecord:
    return GameRecord(GAME, Path("/games"), b"fp", downloaded=True, installed=False,
                      version="1.0", size=0, manifest_hash=manifest_hash)  # fmt: skip


@dataclass
class RecordingStore:
    """A ``ManifestStore`` that records each call (and the thread of the blocking one)."""

    current: GameRecord | None
    stored_ok: bool = True
    actions: list[str] = field(default_factory=list)

    def record(self, game_id: str) -> GameRecord | None:
        self.actions.append(f"record {game_id}")
        return self.current

    def wanted(self, game_id: str, *, for_peer: bool) -> GameRecord:
        self.actions.append(f"wanted {game_id} for_peer={for_peer}")
        if self.current is None:
            raise ServeRefused(ErrorCode.NOT_FOUND, "gone")
        return self.current

    def needs_hash(self) -> list[str]:
        self.actions.append("needs_hash")
        return []

    async def load_manifest(self, hashed: GameRecord) -> Manifest | None:
        self.actions.append(f"load_manifest {hashed.game_id}")
        return manifest(hashed.game_id)

    def hash_files(
        self, hashed: GameRecord, progress: scanner.HashProgress, chunk_size: int
    ) -> scanner.HashResult:
        self.actions.append(f"hash_files {hashed.game_id} {chunk_size} in "
                            f"{threading.current_thread().name.split('_')[0]}")  # fmt: skip
        return scanner.HashResult(manifest(hashed.game_id), [], 0, 0)

    async def store_manifest(self, hashed: GameRecord, result: scanner.HashResult) -> None:
        self.actions.append(f"store_manifest {hashed.game_id}")
        if not self.stored_ok:
            raise scanner.HashCancelled("changed meanwhile")
        assert self.current is not None
        self.current = replace(self.current, manifest_hash=result.manifest.manifest_hash)


def test_the_hasher_is_built_from_one_store_and_holds_no_library_internals() -> None:
    assert list(inspect.signature(GameHasher).parameters) == ["store", "chunk_size"]
    hasher = GameHasher(RecordingStore(record()))
    held = list(vars(hasher).values())
    assert not any(isinstance(v, asyncio.Lock | LibraryState | LibraryIndex) for v in held)


async def _running(store: RecordingStore) -> GameHasher:
    hasher = GameHasher(store, chunk_size=1024)
    await hasher.start()
    return hasher


@pytest.mark.asyncio
async def test_a_game_is_hashed_in_the_hashers_thread_and_stored_through_the_store() -> None:
    store = RecordingStore(record())
    hasher = await _running(store)
    try:
        got = await hasher.wait_manifest(GAME, for_peer=True)
        again = await hasher.wait_manifest(GAME, for_peer=True)
    finally:
        await hasher.aclose()
    assert got == again == manifest(GAME)
    assert store.actions == [
        f"wanted {GAME} for_peer=True",
        f"record {GAME}",
        f"hash_files {GAME} 1024 in lanpeer-hash",
        f"store_manifest {GAME}",
        f"wanted {GAME} for_peer=True",  # then the cached manifest: nothing else asked
    ]


@pytest.mark.asyncio
async def test_a_known_manifest_is_rebuilt_not_hashed() -> None:
    store = RecordingStore(record(manifest_hash=manifest(GAME).manifest_hash))
    hasher = await _running(store)
    try:
        assert await hasher.wait_manifest(GAME, for_peer=False) == manifest(GAME)
    finally:
        await hasher.aclose()
    assert store.actions == [
        f"wanted {GAME} for_peer=False",
        f"record {GAME}",
        f"load_manifest {GAME}",
    ]


@pytest.mark.asyncio
async def test_a_game_that_keeps_changing_is_refused_busy_after_the_attempts() -> None:
    store = RecordingStore(record(), stored_ok=False)
    hasher = await _running(store)
    try:
        with pytest.raises(ServeRefused) as refused:
            await hasher.wait_manifest(GAME, for_peer=True)
    finally:
        await hasher.aclose()
    assert refused.value.wire_code is ErrorCode.BUSY
    one_attempt = [
        f"wanted {GAME} for_peer=True",
        f"record {GAME}",
        f"hash_files {GAME} 1024 in lanpeer-hash",
        f"store_manifest {GAME}",
    ]
    assert store.actions == one_attempt * HASH_ATTEMPTS
