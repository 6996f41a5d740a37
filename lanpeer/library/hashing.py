"""Manifests on demand and in the background: one hashing task per game, progress, a cache.

Owns the hashing threads (blake3 releases the GIL), per-game progress, the decoded-manifest cache
and the retry rules. Reaches the library only through ``ManifestStore`` (which stores a result
only if the game's served files are still exactly the ones hashed, re-walked under the write
lock). Never hashes on the event loop and never stores a manifest for files that changed
meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import Manifest

from lanpeer.library import scanner
from lanpeer.library.errors import ServeRefused
from lanpeer.library.index import GameRecord
from lanpeer.library.manifest import CHUNK_SIZE, FileChangedError

log = logging.getLogger(__name__)

#: Manifests kept decoded in memory; the rest are rebuilt from the index on demand.
MANIFEST_CACHE = 32
#: A peer's GetManifest waits through at most this many "changed while hashing" restarts.
HASH_ATTEMPTS = 3


class ManifestStore(Protocol):
    """All ``GameHasher`` needs of the library (``LibraryManifests`` is the real one): the
    hasher holds no lock, state or index of the library."""

    def record(self, game_id: str) -> GameRecord | None: ...

    def wanted(self, game_id: str, *, for_peer: bool) -> GameRecord:
        """The record to hash, or ``ServeRefused``."""
        ...

    def needs_hash(self) -> list[str]: ...

    async def load_manifest(self, record: GameRecord) -> Manifest | None:
        """The manifest rebuilt from the index, None when it no longer names the record's."""
        ...

    def hash_files(
        self, record: GameRecord, progress: scanner.HashProgress, chunk_size: int
    ) -> scanner.HashResult:
        """Blocking: runs in one of the hasher's threads."""
        ...

    async def store_manifest(self, hashed: GameRecord, result: scanner.HashResult) -> None:
        """Store under the library's write lock, or ``HashCancelled`` if the game changed."""
        ...


class GameHasher:
    def __init__(self, store: ManifestStore, chunk_size: int = CHUNK_SIZE) -> None:
        self._chunk_size = chunk_size
        self._store = store
        # Background hashing has its own thread, so a peer's request for another game's
        # manifest never waits behind a 150 GB game being hashed.
        self._background_pool = ThreadPoolExecutor(1, thread_name_prefix="lanpeer-hash-bg")
        self._request_pool = ThreadPoolExecutor(1, thread_name_prefix="lanpeer-hash")
        self._group: asyncio.TaskGroup | None = None  # every hash runs in it (``start``)
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: dict[str, asyncio.Future[Manifest]] = {}  # game -> its hash's result
        self._progress: dict[str, scanner.HashProgress] = {}
        self._manifests: dict[str, Manifest] = {}
        #: Games whose hashing failed for good (unreadable file, too many files), by the record
        #: that failed: not retried until the game changes.
        self._failed: dict[str, tuple[GameRecord, ServeRefused]] = {}
        self._wanted = asyncio.Event()  # set when a game may need hashing
        self.files_hashed = 0  # files read and hashed (not reused from the index)
        self._bytes_hashed_done = 0  # bytes of hashes that ended (any game, any outcome)

    def want(self) -> None:
        """A game may need hashing now: the background loop looks at the records again."""
        self._wanted.set()

    def progress(self, game_id: str) -> scanner.HashProgress | None:
        return self._progress.get(game_id)

    @property
    def bytes_hashed(self) -> int:
        """Bytes hashed since start, every game (only grows): a waiting peer tells a game
        queued behind another one from a hasher that is stuck."""
        return self._bytes_hashed_done + sum(p.done for p in self._progress.values())

    def forget(self, game_id: str) -> None:
        """The game's record changed: drop its cached manifest."""
        self._manifests.pop(game_id, None)

    def cancel(self, game_id: str) -> None:
        """The game is gone: stop hashing it (the result could never be stored)."""
        progress = self._progress.get(game_id)
        if progress is not None:
            progress.cancelled = True

    async def start(self) -> None:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()

    async def aclose(self) -> None:
        for progress in self._progress.values():
            progress.cancelled = True
        group, self._group = self._group, None
        for task in list(self._tasks):
            task.cancel()
        if group is not None:
            await group.__aexit__(None, None, None)
        for pool in (self._background_pool, self._request_pool):
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def wait_manifest(self, game_id: str, *, for_peer: bool) -> Manifest:
        for _attempt in range(HASH_ATTEMPTS):
            record = self._store.wanted(game_id, for_peer=for_peer)
            cached = self._manifests.get(game_id)
            if cached is not None and cached.manifest_hash == record.manifest_hash:
                return cached
            failed = self._failed.get(game_id)
            if failed is not None and failed[0] == record:
                raise failed[1]
            try:
                return await asyncio.shield(self._ensure(game_id, self._request_pool))
            except scanner.HashCancelled:
                continue
        raise ServeRefused(ErrorCode.BUSY, f"game {game_id!r} keeps changing; try again later")

    async def run_in_background(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            for game_id in self._store.needs_hash():
                failed = self._failed.get(game_id)
                if failed is not None and failed[0] == self._store.record(game_id):
                    continue
                try:
                    await asyncio.shield(self._ensure(game_id, self._background_pool))
                except scanner.HashCancelled as exc:
                    log.debug("hashing %s cancelled (%s); retried when it settles", game_id, exc)
                except ServeRefused:
                    pass  # _fail logged why, once; not retried until the game changes
                except Exception:
                    log.exception("hashing %s failed", game_id)

    def _ensure(self, game_id: str, pool: ThreadPoolExecutor) -> asyncio.Future[Manifest]:
        """The game's hash in progress, or a new one in the hasher's task group."""
        running = self._running.get(game_id)
        if running is not None:
            return running
        if self._group is None:
            raise scanner.HashCancelled(f"{game_id}: the library is closing")
        result: asyncio.Future[Manifest] = asyncio.get_running_loop().create_future()
        self._running[game_id] = result
        task = self._group.create_task(self._deliver(game_id, pool, result))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return result

    async def _deliver(
        self, game_id: str, pool: ThreadPoolExecutor, result: asyncio.Future[Manifest]
    ) -> None:
        """Hash into ``result`` (what every waiter awaits); the task itself never fails, so
        one game's error never cancels the group."""
        try:
            result.set_result(await self._hash(game_id, pool))
        except asyncio.CancelledError:
            result.cancel()
            raise
        except Exception as exc:
            result.set_exception(exc)
            # Retrieved here so a hash nobody waits for (background) is not reported twice;
            # the waiters, or run_in_background, log it.
            log.debug("hashing %s ended without a manifest: %r", game_id, result.exception())
        finally:
            if self._running.get(game_id) is result:
                del self._running[game_id]

    async def _hash(self, game_id: str, pool: ThreadPoolExecutor) -> Manifest:
        record = self._store.record(game_id)
        if record is None:
            raise scanner.HashCancelled(f"{game_id} is gone")
        if record.manifest_hash is not None:
            manifest = await self._store.load_manifest(record)
            if manifest is not None:
                return self._remember(game_id, manifest)
        result = await self._hash_off_loop(record, pool)
        self.files_hashed += result.files_hashed
        await self._store.store_manifest(record, result)
        return self._remember(game_id, result.manifest)

    async def _hash_off_loop(
        self, record: GameRecord, pool: ThreadPoolExecutor
    ) -> scanner.HashResult:
        progress = scanner.HashProgress()
        self._progress[record.game_id] = progress
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                pool, self._store.hash_files, record, progress, self._chunk_size
            )
        except (FileChangedError, FileNotFoundError) as exc:  # moving under us: try again later
            raise scanner.HashCancelled(f"{record.game_id}: {exc}") from exc
        except OSError as exc:  # unreadable: wait until the game changes
            raise self._fail(record, f"cannot read {record.game_id}: {exc}") from exc
        except ValueError as exc:  # the manifest breaks a wire limit (files, chunks, sizes)
            raise self._fail(record, f"{record.game_id} is too large for a manifest") from exc
        finally:
            self._progress.pop(record.game_id, None)
            self._bytes_hashed_done += progress.done

    def _fail(self, record: GameRecord, why: str) -> ServeRefused:
        log.warning("%s; not hashed again until it changes", why)
        refusal = ServeRefused(ErrorCode.INTERNAL, why)
        self._failed[record.game_id] = (record, refusal)
        return refusal

    def _remember(self, game_id: str, manifest: Manifest) -> Manifest:
        self._manifests[game_id] = manifest
        while len(self._manifests) > MANIFEST_CACHE:
            del self._manifests[next(iter(self._manifests))]
        return manifest
